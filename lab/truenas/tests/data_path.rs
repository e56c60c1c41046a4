//! The emulator with its real data path: tgt and nfs-ganesha in a "nas" network namespace
//! serve what the API set up, and a "node" namespace reaches them with libiscsi's and
//! libnfs's user-space clients (this host's kernel has neither iSCSI nor NFS): iSCSI
//! discovery and login see the target and its LUN (tgt LUN 1 = TrueNAS LUN 0), the NFS
//! export lists a file seeded into the dataset. Needs root, tgt, nfs-ganesha(-vfs),
//! rpcbind, libiscsi-bin and libnfs-utils (`cargo xtask setup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::Raw;
use kiln_lab_truenas::{TgtGanesha, TgtGaneshaOptions, TruenasConfig};
use serde_json::json;

const NAS: &str = "10.213.9.1";
const NODE: &str = "10.213.9.2";
const NODE_IQN: &str = "iqn.2005-03.org.open-iscsi:kiln-tn-node1";

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ip(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth; removed (with whatever runs in them) on drop.
struct Net {
    nas: String,
    node: String,
}

impl Net {
    fn new() -> Self {
        let uid = std::fs::read_to_string("/proc/self/status").unwrap();
        let root = uid
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|u| u.split_whitespace().nth(1) == Some("0"));
        assert!(root, "the data-path test needs root (network namespaces)");
        for tool in [
            "/usr/sbin/tgtd",
            "/usr/bin/ganesha.nfsd",
            "/usr/bin/iscsi-ls",
            "/usr/bin/nfs-ls",
        ] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing; `cargo xtask setup` installs it"
            );
        }
        let prefix = format!("ktn-{}", std::process::id());
        let net = Self {
            nas: format!("{prefix}-nas"),
            node: format!("{prefix}-node"),
        };
        ip(&["netns", "add", &net.nas]);
        ip(&["netns", "add", &net.node]);
        for ns in [&net.nas, &net.node] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &net.nas, "link", "add", "tnas0", "type", "veth", "peer", "name", "tnode0",
            "netns", &net.node,
        ]);
        ip(&[
            "-n",
            &net.nas,
            "addr",
            "add",
            &format!("{NAS}/24"),
            "dev",
            "tnas0",
        ]);
        ip(&[
            "-n",
            &net.node,
            "addr",
            "add",
            &format!("{NODE}/24"),
            "dev",
            "tnode0",
        ]);
        ip(&["-n", &net.nas, "link", "set", "tnas0", "up"]);
        ip(&["-n", &net.node, "link", "set", "tnode0", "up"]);
        net
    }

    fn on_node(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.node];
        full.extend_from_slice(args);
        let out = run("ip", &full);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.nas, &self.node] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgt_and_ganesha_serve_what_the_api_set_up() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_path = TgtGanesha::new(TgtGaneshaOptions {
        namespace: net.nas.clone(),
        address: NAS.parse().unwrap(),
        data_dir: data_dir.clone(),
        state_dir: dir.path().join("servers"),
    });
    let config = TruenasConfig {
        data_dir: Some(data_dir),
        data_path: Some(Arc::new(data_path)),
        ..TruenasConfig::default()
    };
    let nas = common::start_with(config).await;
    let mut raw = Raw::logged_in(&nas).await;
    raw.ok("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    raw.ok(
        "pool.dataset.create",
        json!([{"name": "tank/k8s/nfs", "create_ancestors": true}]),
    )
    .await;
    raw.ok("pool.dataset.create", json!([{"name": "tank/k8s/iscsi/v1", "type": "VOLUME", "volsize": 64u64 << 20, "sparse": true, "create_ancestors": true}])).await;
    raw.ok(
        "iscsi.portal.create",
        json!([{"listen": [{"ip": "0.0.0.0"}]}]),
    )
    .await;
    raw.ok(
        "iscsi.initiator.create",
        json!([{"initiators": [NODE_IQN]}]),
    )
    .await;
    raw.ok(
        "iscsi.extent.create",
        json!([{"name": "v1", "disk": "zvol/tank/k8s/iscsi/v1"}]),
    )
    .await;
    raw.ok("iscsi.target.create", json!([{"name": "v1", "groups": [{"portal": 1, "initiator": 1}], "auth_networks": [format!("{NODE}/32")]}])).await;
    raw.ok(
        "iscsi.targetextent.create",
        json!([{"target": 1, "extent": 1, "lunid": 0}]),
    )
    .await;
    raw.ok("sharing.nfs.create", json!([{"path": "/mnt/tank/k8s/nfs", "networks": [format!("{NODE}/32")], "maproot_user": "root", "maproot_group": "root"}])).await;
    nas.write_file("tank/k8s/nfs", "hello.txt", b"from the emulator\n")
        .unwrap();
    assert_eq!(
        raw.ok(
            "service.control",
            json!(["START", "iscsitarget", {"silent": false}])
        )
        .await,
        json!(true)
    );
    assert_eq!(
        raw.ok(
            "service.control",
            json!(["START", "nfs", {"silent": false}])
        )
        .await,
        json!(true)
    );

    let listing = net.on_node(&["iscsi-ls", "-s", "-i", NODE_IQN, &format!("iscsi://{NAS}")]);
    assert!(
        listing.contains("Target:iqn.2005-10.org.freenas.ctl:v1"),
        "{listing}"
    );
    assert!(listing.contains("Lun:1"), "{listing}");
    // Another initiator name is not in the group.
    let refused = net.on_node(&[
        "iscsi-ls",
        "-s",
        "-i",
        "iqn.2005-03.org.open-iscsi:stranger",
        &format!("iscsi://{NAS}"),
    ]);
    assert!(!refused.contains("Lun:1"), "{refused}");

    println!("{listing}");
    let files = net.on_node(&["nfs-ls", &format!("nfs://{NAS}/mnt/tank/k8s/nfs?version=4")]);
    println!("{files}");
    assert!(files.contains("hello.txt"), "{files}");

    // A target added while running is served without a restart.
    raw.ok("pool.dataset.create", json!([{"name": "tank/k8s/iscsi/v2", "type": "VOLUME", "volsize": 64u64 << 20, "sparse": true}])).await;
    raw.ok(
        "iscsi.extent.create",
        json!([{"name": "v2", "disk": "zvol/tank/k8s/iscsi/v2"}]),
    )
    .await;
    raw.ok(
        "iscsi.target.create",
        json!([{"name": "v2", "groups": [{"portal": 1, "initiator": 1}]}]),
    )
    .await;
    raw.ok(
        "iscsi.targetextent.create",
        json!([{"target": 2, "extent": 2}]),
    )
    .await;
    let listing = net.on_node(&["iscsi-ls", "-s", "-i", NODE_IQN, &format!("iscsi://{NAS}")]);
    assert!(
        listing.contains("Target:iqn.2005-10.org.freenas.ctl:v2"),
        "{listing}"
    );

    assert_eq!(
        raw.ok("service.control", json!(["STOP", "iscsitarget", {}]))
            .await,
        json!(true)
    );
    let listing = net.on_node(&["iscsi-ls", "-s", "-i", NODE_IQN, &format!("iscsi://{NAS}")]);
    assert!(!listing.contains("Target:"), "{listing}");
    nas.shutdown().await;
}
