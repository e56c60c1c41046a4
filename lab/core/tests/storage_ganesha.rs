//! nfs-ganesha in a "nas" namespace exporting directories of a pool at TrueNAS's paths
//! (`/mnt/tank/…`), reached from a "node" namespace with libnfs's user-space client (this
//! kernel has no NFS client): listing, a file written by the node landing in the exported
//! directory, a client outside the export's networks refused, an export added and one removed
//! live (SIGHUP, same process). Needs root, nfs-ganesha(-vfs), rpcbind and libnfs-utils
//! (`cargo xtask setup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{NODE, SERVER, TestNet, text};
use kiln_lab_core::storage::{Export, GaneshaOptions, GaneshaServer, PoolMount, Squash};

const FIRST: &str = "/mnt/tank/k8s/nfs/pvc-first";
const SECOND: &str = "/mnt/tank/k8s/nfs/pvc-second";

/// The pool's directory on the host, with both shares' directories made.
fn pool(net: &TestNet) -> PathBuf {
    let pool = net.dir.join("tank");
    for share in ["k8s/nfs/pvc-first", "k8s/nfs/pvc-second"] {
        std::fs::create_dir_all(pool.join(share)).unwrap();
    }
    pool
}

fn start(net: &TestNet, nfs_v3: bool) -> GaneshaServer {
    let started = Instant::now();
    let server = GaneshaServer::start(GaneshaOptions {
        namespace: net.nas.clone(),
        listen: SERVER.parse().unwrap(),
        state_dir: net.dir.join("ganesha"),
        pools: vec![PoolMount {
            source: pool(net),
            served: PathBuf::from("/mnt/tank"),
        }],
        nfs_v3,
    })
    .unwrap();
    println!("ganesha ready in {:?}", started.elapsed());
    server
}

fn url(path: &str, version: u8) -> String {
    format!("nfs://{SERVER}{path}?version={version}")
}

fn node_only(path: &str) -> Export {
    Export::truenas(0, path, vec![format!("{NODE}/32")], Squash::NoRootSquash)
}

#[test]
fn ganesha_exports_to_its_clients_only_and_changes_exports_without_a_restart() {
    let net = TestNet::new("nfs-v4");
    let server = start(&net, false);
    let pid = server.pid();
    server
        .add_export(Export {
            id: 1,
            ..node_only(FIRST)
        })
        .unwrap();

    let listed = net.run(&net.node, &["nfs-ls", &url(FIRST, 4)], &[]);
    assert!(listed.status.success(), "{}", text(&listed));

    // A file the node writes lands in the pool's directory on the host.
    let upload = net.dir.join("upload.txt");
    std::fs::write(&upload, "written over NFSv4 from the node\n").unwrap();
    let copied = net.run(
        &net.node,
        &[
            "nfs-cp",
            upload.to_str().unwrap(),
            &url(&format!("{FIRST}/upload.txt"), 4),
        ],
        &[],
    );
    assert!(copied.status.success(), "{}", text(&copied));
    let landed = net.dir.join("tank/k8s/nfs/pvc-first/upload.txt");
    assert_eq!(
        std::fs::read_to_string(&landed).unwrap(),
        "written over NFSv4 from the node\n"
    );
    let read_back = net.run(
        &net.node,
        &["nfs-cat", &url(&format!("{FIRST}/upload.txt"), 4)],
        &[],
    );
    assert!(
        text(&read_back).contains("written over NFSv4"),
        "{}",
        text(&read_back)
    );

    // Another address is outside the export's networks.
    let refused = net.run(&net.stranger, &["nfs-ls", &url(FIRST, 4)], &[]);
    assert!(
        !refused.status.success(),
        "the stranger listed the export: {}",
        text(&refused)
    );

    // Not exported yet, then added live: same process, no restart.
    let before = net.run(&net.node, &["nfs-ls", &url(SECOND, 4)], &[]);
    assert!(!before.status.success(), "{}", text(&before));
    let reload = Instant::now();
    server
        .add_export(Export {
            id: 2,
            ..node_only(SECOND)
        })
        .unwrap();
    println!("export added (SIGHUP reload) in {:?}", reload.elapsed());
    let after = net.run(&net.node, &["nfs-ls", &url(SECOND, 4)], &[]);
    assert!(after.status.success(), "{}", text(&after));
    assert_eq!(server.pid(), pid);
    assert_eq!(server.exports().len(), 2);

    // Removed live: the first export is gone, the second still served.
    let reload = Instant::now();
    server.remove_export(1).unwrap();
    println!("export removed (SIGHUP reload) in {:?}", reload.elapsed());
    let gone = net.run(&net.node, &["nfs-ls", &url(FIRST, 4)], &[]);
    assert!(!gone.status.success(), "{}", text(&gone));
    let kept = net.run(&net.node, &["nfs-ls", &url(SECOND, 4)], &[]);
    assert!(kept.status.success(), "{}", text(&kept));

    // Refused before ganesha sees them: a missing directory, an unknown export, a bad network.
    let missing = server.add_export(Export {
        id: 3,
        ..node_only("/mnt/tank/k8s/nfs/nowhere")
    });
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("no such directory")
    );
    assert!(server.remove_export(9).is_err());
    let mut bad = node_only(SECOND);
    bad.id = 4;
    bad.clients = vec!["10.213.7.0/24; Access_Type = RW".to_string()];
    assert!(server.add_export(bad).is_err());

    server.shutdown();
    common::wait_until_empty(&net);
}

#[test]
fn ganesha_serves_nfsv3_with_its_own_rpcbind() {
    let net = TestNet::new("nfs-v3");
    let server = start(&net, true);
    server
        .add_export(Export {
            id: 1,
            ..node_only(FIRST)
        })
        .unwrap();
    let listed = net.run(&net.node, &["nfs-ls", &url(FIRST, 3)], &[]);
    assert!(listed.status.success(), "{}", text(&listed));
    let refused = net.run(&net.stranger, &["nfs-ls", &url(FIRST, 3)], &[]);
    assert!(!refused.status.success(), "{}", text(&refused));
    server.shutdown();
    common::wait_until_empty(&net);
}

#[test]
fn a_dropped_ganesha_leaves_no_process_behind() {
    let net = TestNet::new("nfs-drop");
    let server = start(&net, true);
    drop(server);
    common::wait_until_empty(&net);
}

#[test]
fn ganesha_set_exports_serves_exactly_the_list_and_skips_a_reload_when_nothing_changed() {
    let net = TestNet::new("nfs-set");
    let server = start(&net, false);
    let reloads = || {
        std::fs::read_to_string(server.log())
            .unwrap()
            .matches("Reread exports complete")
            .count()
    };
    let both = vec![
        Export {
            id: 1,
            ..node_only(FIRST)
        },
        Export {
            id: 2,
            ..node_only(SECOND)
        },
    ];
    server.set_exports(both.clone()).unwrap();
    for path in [FIRST, SECOND] {
        let listed = net.run(&net.node, &["nfs-ls", &url(path, 4)], &[]);
        assert!(listed.status.success(), "{path}: {}", text(&listed));
    }
    let after_first = reloads();
    server.set_exports(both.clone()).unwrap();
    assert_eq!(reloads(), after_first, "an unchanged list was reloaded");

    server.set_exports(vec![both[1].clone()]).unwrap();
    let gone = net.run(&net.node, &["nfs-ls", &url(FIRST, 4)], &[]);
    assert!(!gone.status.success(), "{}", text(&gone));
    let kept = net.run(&net.node, &["nfs-ls", &url(SECOND, 4)], &[]);
    assert!(kept.status.success(), "{}", text(&kept));

    let same_pseudo = vec![
        Export {
            id: 1,
            ..node_only(SECOND)
        },
        Export {
            id: 2,
            ..node_only(SECOND)
        },
    ];
    assert!(server.set_exports(same_pseudo).is_err());
    server.shutdown();
    common::wait_until_empty(&net);
}
