//! Malformed calls sent raw get TrueNAS-shaped errors naming the attribute: -32602
//! "Invalid params", `data.error` 22 (EINVAL), `data.extra` = `[[attribute, message, errno]]`,
//! `data.reason` = `"[EINVAL] attribute: message\n"` per error — with pydantic's strictness
//! (`"1"` and `1.0` are not integers, `"true"` is not a boolean, unknown keys are refused).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Raw, extra};
use serde_json::{Value, json};

/// (method, params, [(attribute, message)]) — each call must fail with exactly these.
/// A malformed call and the (attribute, message) pairs it must be refused with.
type Case = (&'static str, Value, Vec<(&'static str, &'static str)>);

fn cases() -> Vec<Case> {
    vec![
        (
            "iscsi.targetextent.create",
            json!([{"target": "1", "extent": 1}]),
            vec![(
                "iscsi_target_to_extent_create.target",
                "Input should be a valid integer",
            )],
        ),
        (
            "iscsi.targetextent.create",
            json!([{"target": 1.0, "extent": 1}]),
            vec![(
                "iscsi_target_to_extent_create.target",
                "Input should be a valid integer",
            )],
        ),
        (
            "pool.dataset.create",
            json!([{"name": "tank/v", "type": "VOLUME"}]),
            // A union of models: each model's errors under its name (pydantic 2.9.2).
            vec![
                (
                    "data.PoolDatasetCreateFilesystem.type",
                    "Input should be 'FILESYSTEM'",
                ),
                ("data.PoolDatasetCreateVolume.volsize", "Field required"),
            ],
        ),
        (
            "pool.dataset.create",
            json!([{"name": "tank/v", "type": "FILESYSTEM", "volsize": 1024}]),
            vec![
                (
                    "data.PoolDatasetCreateFilesystem.volsize",
                    "Extra inputs are not permitted",
                ),
                (
                    "data.PoolDatasetCreateVolume.type",
                    "Input should be 'VOLUME'",
                ),
            ],
        ),
        // No `type` but a `volsize`: pydantic's smart union makes it a volume.
        (
            "pool.dataset.create",
            json!([{"name": "tank/v", "volsize": 1000}]),
            vec![(
                "pool_dataset_create.volsize",
                "Volume size should be a multiple of volume block size",
            )],
        ),
        (
            "pool.dataset.create",
            json!([{"name": "tank/v", "user_properties": [{"key": "kiln:x", "value": 1}]}]),
            vec![
                (
                    "data.PoolDatasetCreateFilesystem.user_properties.0.value",
                    "Input should be a valid string",
                ),
                (
                    "data.PoolDatasetCreateVolume.user_properties.0.value",
                    "Input should be a valid string",
                ),
                ("data.PoolDatasetCreateVolume.volsize", "Field required"),
            ],
        ),
        (
            "sharing.nfs.create",
            json!([{"path": "/mnt/tank", "alldirs": true, "quiet": true}]),
            vec![
                ("data.alldirs", "Extra inputs are not permitted"),
                ("data.quiet", "Extra inputs are not permitted"),
            ],
        ),
        (
            "iscsi.extent.create",
            json!([{"name": "e1", "disk": "zvol/tank/v", "blocksize": "512"}]),
            vec![(
                "iscsi_extent_create.blocksize",
                "Input should be 512, 1024, 2048 or 4096",
            )],
        ),
        (
            "iscsi.target.create",
            json!([{"name": "t1", "groups": [{"portal": "1"}]}]),
            vec![(
                "iscsi_target_create.groups.0.portal",
                "Input should be a valid integer",
            )],
        ),
        (
            "iscsi.initiator.create",
            json!([{"initiators": "iqn.2005-03.org.open-iscsi:n1"}]),
            vec![(
                "iscsi_initiator_create.initiators",
                "Input should be a valid list",
            )],
        ),
        (
            "service.update",
            json!(["nfs", {"enable": "true"}]),
            vec![("service_update.enable", "Input should be a valid boolean")],
        ),
        (
            "pool.dataset.delete",
            json!(["tank/x", {"recursive": 1}]),
            vec![("options.recursive", "Input should be a valid boolean")],
        ),
        (
            "pool.dataset.update",
            json!(["tank", {"user_properties_update": [{"key": "nocolon", "value": "v"}]}]),
            vec![(
                "data.user_properties_update.0.key",
                "String should match pattern '.*:.*'",
            )],
        ),
        (
            "core.ping",
            json!([1]),
            vec![("", "Too many arguments (expected 0, found 1)")],
        ),
        (
            "iscsi.portal.create",
            json!([]),
            vec![("iscsi_portal_create", "Field required")],
        ),
        (
            "service.control",
            json!(["BEGIN", "nfs", {}]),
            vec![(
                "verb",
                "Input should be 'START', 'STOP', 'RESTART' or 'RELOAD'",
            )],
        ),
        (
            "iscsi.auth.create",
            json!([{"tag": 1, "user": "kiln", "secret": "short"}]),
            vec![(
                "iscsi_auth_create.secret",
                "Secret must be between 12 and 16 characters.",
            )],
        ),
        (
            "iscsi.extent.create",
            json!([{"name": "e1", "disk": "tank/v"}]),
            vec![(
                "iscsi_extent_create.disk",
                "Disk name must start with \"zvol/\"",
            )],
        ),
        (
            "iscsi.target.create",
            json!([{"name": "Bad_Name"}]),
            vec![(
                "iscsi_target_create.name",
                "Only lowercase alphanumeric characters plus dot (.), dash (-), and colon (:) are allowed.",
            )],
        ),
        (
            "iscsi.target.create",
            json!([{"name": "t9", "groups": [{"portal": 9}]}]),
            vec![(
                "iscsi_target_create.groups.0.portal",
                "9 Portal not found in database",
            )],
        ),
        (
            "pool.dataset.create",
            json!([{"name": "tank/no/parent"}]),
            vec![(
                "pool_dataset_create.name",
                "Parent dataset (tank/no) does not exist.",
            )],
        ),
    ]
}

#[tokio::test]
async fn malformed_calls_get_truenas_shaped_errors_naming_the_attribute() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    for (method, params, expected) in cases() {
        let error = raw.err(method, params.clone()).await;
        let context = format!("{method} {params}: {error}");
        assert_eq!(error["code"], -32602, "{context}");
        assert_eq!(error["message"], "Invalid params", "{context}");
        assert_eq!(error["data"]["error"], 22, "{context}");
        assert_eq!(error["data"]["errname"], "EINVAL", "{context}");
        let got: Vec<(Value, String, i64)> = extra(&error);
        let want: Vec<(Value, String, i64)> = expected
            .iter()
            .map(|(a, m)| (json!(a), (*m).to_string(), 22))
            .collect();
        assert_eq!(got, want, "{context}");
        let reason: String = expected
            .iter()
            .map(|(a, m)| format!("[EINVAL] {a}: {m}\n"))
            .collect();
        assert_eq!(error["data"]["reason"], reason, "{context}");
    }
    // Each was logged as a refused call with its code.
    let refused = nas
        .calls()
        .iter()
        .filter(|c| c.error_code == Some(-32602))
        .count();
    assert_eq!(refused, cases().len());
    nas.shutdown().await;
}

#[tokio::test]
async fn instance_not_found_has_no_attribute_and_enoent() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    let error = raw
        .err("pool.dataset.get_instance", json!(["tank/nope"]))
        .await;
    assert_eq!(error["code"], -32602);
    assert_eq!(
        extra(&error),
        vec![(
            Value::Null,
            "PoolDataset tank/nope does not exist".to_string(),
            2
        )]
    );
    assert_eq!(
        error["data"]["reason"],
        "[ENOENT] None: PoolDataset tank/nope does not exist\n"
    );
    let error = raw.err("iscsi.target.get_instance", json!([7])).await;
    assert_eq!(
        extra(&error),
        vec![(Value::Null, "iSCSITarget 7 does not exist".to_string(), 2)]
    );
    nas.shutdown().await;
}
