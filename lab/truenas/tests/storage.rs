//! The NAS behaves as TrueNAS does where clients depend on it: dataset parents and
//! ancestors, name conflicts, recursive deletes and the attachment delegates, portal tags,
//! LUN and extent reuse, NFS export conflicts, query filters, seeded data, sparse zvol
//! files, and what the data path is told.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Raw, extra};
use kiln_lab_truenas::{DataPath, IscsiView, NfsView, TruenasConfig};
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

#[tokio::test]
async fn datasets_follow_truenas_rules() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    let error = raw
        .err("pool.dataset.create", json!([{"name": "nope/x"}]))
        .await;
    assert_eq!(extra(&error)[0].1, "zpool (nope) does not exist.");
    raw.ok(
        "pool.dataset.create",
        json!([{"name": "tank/k8s/c1/nfs", "create_ancestors": true}]),
    )
    .await;
    let error = raw
        .err("pool.dataset.create", json!([{"name": "tank/k8s/c1/nfs"}]))
        .await;
    assert_eq!(
        extra(&error)[0],
        (
            json!("pool_dataset_create.name"),
            "Path /mnt/tank/k8s/c1/nfs already exists".to_string(),
            22
        )
    );
    let zvol = raw
        .ok("pool.dataset.create", json!([{"name": "tank/k8s/c1/iscsi/v1", "type": "VOLUME", "volsize": GIB, "sparse": true, "create_ancestors": true,
            "user_properties": [{"key": "kiln:cluster", "value": "c1"}]}]))
        .await;
    assert_eq!(zvol["type"], "VOLUME");
    assert_eq!(zvol["mountpoint"], Value::Null);
    assert_eq!(zvol["volsize"]["parsed"], GIB);
    assert_eq!(zvol["volblocksize"]["value"], "16K");
    assert_eq!(zvol["user_properties"]["kiln:cluster"]["value"], "c1");
    // Filters and options the clients use.
    let found = raw
        .ok(
            "pool.dataset.query",
            json!([[["id", "^", "tank/k8s/c1/"]], {"select": ["id", "type"], "order_by": ["-id"]}]),
        )
        .await;
    assert_eq!(
        found,
        json!([{"id": "tank/k8s/c1/nfs", "type": "FILESYSTEM"}, {"id": "tank/k8s/c1/iscsi/v1", "type": "VOLUME"}, {"id": "tank/k8s/c1/iscsi", "type": "FILESYSTEM"}])
    );
    let one = raw.ok("pool.dataset.query", json!([[["id", "=", "tank/k8s"]], {"extra": {"retrieve_children": false, "properties": ["used"]}, "get": true}])).await;
    assert_eq!(one["children"], json!([]));
    assert!(one.get("compression").is_none() && one.get("used").is_some());
    assert_eq!(
        raw.ok(
            "pool.dataset.query",
            json!([[["name", "in", ["tank/k8s", "tank/zz"]]], {"count": true}])
        )
        .await,
        json!(1)
    );
    // Children need `recursive`.
    let error = raw.err("pool.dataset.delete", json!(["tank/k8s"])).await;
    assert_eq!(error["code"], -32001);
    assert_eq!(error["data"]["errname"], "ENOTEMPTY");
    assert_eq!(
        error["data"]["reason"],
        "[ENOTEMPTY] Failed to delete dataset: cannot destroy 'tank/k8s': filesystem has children"
    );
    // Ancestors: the nearest existing one counts; a volume cannot be a parent; 80 %.
    let error = raw
        .err("pool.dataset.create", json!([{"name": "tank/a/b/c"}]))
        .await;
    assert_eq!(
        extra(&error)[0].1,
        "Parent dataset (tank/a/b) does not exist."
    );
    let error = raw
        .err(
            "pool.dataset.create",
            json!([{"name": "tank/k8s/c1/iscsi/v1/x", "create_ancestors": true}]),
        )
        .await;
    assert_eq!(
        extra(&error)[0].1,
        "tank/k8s/c1/iscsi/v1: parent may not be a ZFS volume"
    );
    let error = raw
        .err(
            "pool.dataset.create",
            json!([{"name": "tank/big", "type": "VOLUME", "volsize": 1u64 << 40}]),
        )
        .await;
    assert_eq!(
        extra(&error)[0].1,
        "It is not recommended to use more than 80% of your available space for VOLUME"
    );
    raw.ok("pool.dataset.create", json!([{"name": "tank/big", "type": "VOLUME", "volsize": 1u64 << 40, "force_size": true, "sparse": true}])).await;
    raw.ok("pool.dataset.delete", json!(["tank/big"])).await;
    // Seeded data shows in `used`.
    nas.write_file("tank/k8s/c1/nfs", "keep.txt", b"precious")
        .unwrap();
    let used = raw
        .ok("pool.dataset.get_instance", json!(["tank/k8s/c1/nfs"]))
        .await["used"]["parsed"]
        .clone();
    assert_eq!(used, json!(8));
    let updated = raw.ok("pool.dataset.update", json!(["tank/k8s/c1/iscsi/v1", {"volsize": 2 * GIB, "user_properties_update": [{"key": "kiln:cluster", "remove": true}]}])).await;
    assert_eq!(updated["volsize"]["parsed"], 2 * GIB);
    assert_eq!(updated["user_properties"], json!({}));
    let error = raw
        .err(
            "pool.dataset.update",
            json!(["tank/k8s/c1/iscsi/v1", {"atime": "ON"}]),
        )
        .await;
    assert_eq!(extra(&error)[0].0, json!("pool_dataset_update.atime"));
    assert_eq!(
        raw.ok(
            "pool.dataset.delete",
            json!(["tank/k8s", {"recursive": true}])
        )
        .await,
        json!(true)
    );
    assert!(!nas.dataset_exists("tank/k8s/c1/nfs"));
    nas.shutdown().await;
}

/// Builds dataset → zvol → portal → initiator group → CHAP → extent → target → LUN → share.
async fn provision(raw: &mut Raw) {
    raw.ok(
        "pool.dataset.create",
        json!([{"name": "tank/k8s/nfs", "create_ancestors": true}]),
    )
    .await;
    raw.ok("pool.dataset.create", json!([{"name": "tank/k8s/iscsi/v1", "type": "VOLUME", "volsize": GIB, "volblocksize": "16K", "sparse": true, "create_ancestors": true}])).await;
    raw.ok(
        "iscsi.portal.create",
        json!([{"listen": [{"ip": "0.0.0.0"}], "comment": "kiln"}]),
    )
    .await;
    raw.ok(
        "iscsi.initiator.create",
        json!([{"initiators": ["iqn.2005-03.org.open-iscsi:n1"], "comment": "kiln"}]),
    )
    .await;
    raw.ok(
        "iscsi.auth.create",
        json!([{"tag": 1, "user": "kiln", "secret": "0123456789abcd"}]),
    )
    .await;
    raw.ok("iscsi.extent.create", json!([{"name": "v1", "type": "DISK", "disk": "zvol/tank/k8s/iscsi/v1", "blocksize": 512, "rpm": "SSD"}])).await;
    raw.ok("iscsi.target.create", json!([{"name": "v1", "alias": null, "mode": "ISCSI", "groups": [{"portal": 1, "initiator": 1, "authmethod": "CHAP", "auth": 1}]}])).await;
    raw.ok(
        "iscsi.targetextent.create",
        json!([{"target": 1, "extent": 1, "lunid": 0}]),
    )
    .await;
    raw.ok("sharing.nfs.create", json!([{"path": "/mnt/tank/k8s/nfs", "networks": ["10.213.7.2"], "maproot_user": "root", "maproot_group": "root"}])).await;
}

#[tokio::test]
async fn iscsi_and_nfs_objects_check_references_and_reuse() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    provision(&mut raw).await;
    let error = raw
        .err("iscsi.target.create", json!([{"name": "v1"}]))
        .await;
    assert_eq!(extra(&error)[0].1, "Target with this name already exists");
    raw.ok(
        "pool.dataset.create",
        json!([{"name": "tank/k8s/iscsi/v2", "type": "VOLUME", "volsize": GIB}]),
    )
    .await;
    raw.ok(
        "iscsi.extent.create",
        json!([{"name": "v2", "disk": "zvol/tank/k8s/iscsi/v2"}]),
    )
    .await;
    let error = raw
        .err(
            "iscsi.targetextent.create",
            json!([{"target": 1, "extent": 2, "lunid": 0}]),
        )
        .await;
    assert_eq!(
        extra(&error)[0].1,
        "LUN ID is already being used for this target."
    );
    let error = raw
        .err(
            "iscsi.targetextent.create",
            json!([{"target": 1, "extent": 1, "lunid": 3}]),
        )
        .await;
    assert_eq!(extra(&error)[0].1, "Extent is already in use.");
    let mapped = raw
        .ok(
            "iscsi.targetextent.create",
            json!([{"target": 1, "extent": 2}]),
        )
        .await;
    assert_eq!(mapped["lunid"], 1, "a null LUN takes the next free one");
    let error = raw
        .err(
            "iscsi.extent.create",
            json!([{"name": "v3", "disk": "zvol/tank/k8s/iscsi/v1"}]),
        )
        .await;
    assert_eq!(extra(&error)[0].0, json!("iscsi_extent_create.disk"));
    // A bare address becomes /32; the same clients on the same path conflict.
    let share = raw.ok("sharing.nfs.get_instance", json!([1])).await;
    assert_eq!(share["networks"], json!(["10.213.7.2/32"]));
    let error = raw
        .err(
            "sharing.nfs.create",
            json!([{"path": "/mnt/tank/k8s/nfs", "networks": ["10.213.7.2/32"]}]),
        )
        .await;
    assert!(
        extra(&error)[0]
            .1
            .starts_with("ERROR - Another NFS share already exports /mnt/tank/k8s/nfs"),
        "{error}"
    );
    let error = raw.err("sharing.nfs.create", json!([{"path": "/mnt/tank/k8s/nfs", "networks": ["192.168.0.0/16"], "maproot_user": "root", "mapall_user": "root"}])).await;
    assert_eq!(extra(&error)[0].1, "maproot_user disqualifies mapall_user");
    // A wider network on the same path overlaps the existing client.
    let error = raw
        .err(
            "sharing.nfs.create",
            json!([{"path": "/mnt/tank/k8s/nfs", "networks": ["10.0.0.0/8"]}]),
        )
        .await;
    assert_eq!(
        extra(&error)[0].1,
        "ERROR - This or another NFS share exports /mnt/tank/k8s/nfs to 10.213.7.2/32 and overlaps network 10.0.0.0/8"
    );
    // A path outside the pool, a path that does not exist.
    let error = raw
        .err("sharing.nfs.create", json!([{"path": "/etc"}]))
        .await;
    assert_eq!(
        extra(&error)[0],
        (
            json!("sharingnfs_create.path"),
            "The path must reside within a pool mount point".to_string(),
            22
        )
    );
    let error = raw
        .err("sharing.nfs.create", json!([{"path": "/mnt/tank/nope"}]))
        .await;
    assert_eq!(
        error["data"]["reason"],
        "[ENOENT] Path /mnt/tank/nope not found"
    );
    // Portal tags are positions: deleting the first renumbers the second.
    raw.ok("iscsi.portal.create", json!([{"listen": [{"ip": "::"}]}]))
        .await;
    raw.ok("iscsi.portal.delete", json!([1])).await;
    let portals = raw.ok("iscsi.portal.query", json!([])).await;
    assert_eq!(
        portals,
        json!([{"id": 2, "tag": 1, "listen": [{"ip": "::", "port": 3260}], "comment": ""}])
    );
    // Deleting the zvol takes its extent, mapping and (now LUN-less only) targets along;
    // deleting the filesystem takes its share.
    raw.ok("pool.dataset.delete", json!(["tank/k8s/iscsi/v1"]))
        .await;
    assert_eq!(
        raw.ok("iscsi.extent.query", json!([[], {"count": true}]))
            .await,
        json!(1)
    );
    assert_eq!(
        raw.ok("iscsi.target.query", json!([[], {"count": true}]))
            .await,
        json!(1),
        "target 1 still has LUN 1"
    );
    raw.ok("pool.dataset.delete", json!(["tank/k8s/iscsi/v2"]))
        .await;
    assert_eq!(
        raw.ok("iscsi.target.query", json!([[], {"count": true}]))
            .await,
        json!(0)
    );
    raw.ok("pool.dataset.delete", json!(["tank/k8s/nfs"])).await;
    assert_eq!(raw.ok("sharing.nfs.query", json!([])).await, json!([]));
    nas.shutdown().await;
}

/// Remembers every view it is given; can be told to fail.
#[derive(Default)]
struct Recorder {
    iscsi: Mutex<Vec<IscsiView>>,
    nfs: Mutex<Vec<NfsView>>,
    fail: Mutex<bool>,
}

impl DataPath for Recorder {
    fn iscsi(&self, view: &IscsiView) -> Result<(), String> {
        self.iscsi.lock().unwrap().push(view.clone());
        if *self.fail.lock().unwrap() {
            Err("tgtd did not start".into())
        } else {
            Ok(())
        }
    }
    fn nfs(&self, view: &NfsView) -> Result<(), String> {
        self.nfs.lock().unwrap().push(view.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_data_path_hears_the_whole_configuration_and_sparse_files_back_zvols() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let config = TruenasConfig {
        data_dir: Some(dir.path().to_path_buf()),
        data_path: Some(recorder.clone()),
        ..TruenasConfig::default()
    };
    let nas = common::start_with(config).await;
    let mut raw = Raw::logged_in(&nas).await;
    provision(&mut raw).await;
    let zvol_file = dir.path().join("zvol/tank/k8s/iscsi/v1");
    assert_eq!(std::fs::metadata(&zvol_file).unwrap().len(), GIB);
    assert!(dir.path().join("mnt/tank/k8s/nfs").is_dir());
    raw.ok("service.control", json!(["START", "iscsitarget", {}]))
        .await;
    raw.ok("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    assert_eq!(
        raw.ok("service.control", json!(["START", "nfs", {}])).await,
        json!(true)
    );
    let view = recorder.iscsi.lock().unwrap().last().cloned().unwrap();
    assert!(view.running);
    assert_eq!(view.listen_port, 3260);
    let target = &view.targets[0];
    assert_eq!(target.iqn, "iqn.2005-10.org.freenas.ctl:v1");
    assert_eq!(target.initiators, ["iqn.2005-03.org.open-iscsi:n1"]);
    assert_eq!(target.chap.as_ref().unwrap().user, "kiln");
    assert_eq!(target.luns[0].lun, 0);
    assert_eq!(
        target.luns[0].backing_file.as_deref(),
        Some(zvol_file.as_path())
    );
    assert_eq!(target.luns[0].size, GIB);
    let nfs = recorder.nfs.lock().unwrap().last().cloned().unwrap();
    assert!(nfs.running);
    assert_eq!(nfs.exports[0].path, "/mnt/tank/k8s/nfs");
    assert_eq!(nfs.exports[0].networks, ["10.213.7.2/32"]);
    assert_eq!(
        nfs.exports[0].directory.as_deref(),
        Some(dir.path().join("mnt/tank/k8s/nfs").as_path())
    );
    // CHAP secrets never reach the log, not even when they are sent.
    let log = serde_json::to_string(&nas.calls()).unwrap();
    assert!(!log.contains("0123456789abcd"), "{log}");
    // A data path that cannot start the service: false when silent (the default), the
    // error otherwise.
    raw.ok("service.control", json!(["STOP", "iscsitarget", {}]))
        .await;
    *recorder.fail.lock().unwrap() = true;
    assert_eq!(
        raw.ok("service.control", json!(["START", "iscsitarget", {}]))
            .await,
        json!(false)
    );
    let error = raw
        .err(
            "service.control",
            json!(["START", "iscsitarget", {"silent": false}]),
        )
        .await;
    assert_eq!(error["data"]["errname"], "ESERVICESTARTFAILURE", "{error}");
    assert_eq!(
        raw.ok("service.started", json!(["iscsitarget"])).await,
        json!(false)
    );
    raw.ok("pool.dataset.delete", json!(["tank/k8s/iscsi/v1"]))
        .await;
    assert!(!zvol_file.exists());
    nas.shutdown().await;
}
