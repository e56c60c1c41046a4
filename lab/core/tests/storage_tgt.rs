//! tgt in a "nas" namespace serving a sparse-file LUN the way TrueNAS presents an extent,
//! reached from a "node" namespace with libiscsi's user-space initiator (this kernel has no
//! iSCSI): discovery, INQUIRY, READ CAPACITY, a WRITE landing in the backing file, address
//! and name ACLs, CHAP. Needs root, tgt and libiscsi-bin (`cargo xtask setup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{NODE, SERVER, STRANGER, TestNet, text};
use kiln_lab_core::storage::{
    ChapCredential, ChapDirection, ChapSpec, GaneshaOptions, GaneshaServer, Initiator, Lun,
    PoolMount, StorageError, TargetSpec, TgtServer, stop_leftovers,
};

const IQN: &str = "iqn.2005-10.org.freenas.ctl:kiln-pvc-test";
const NODE_IQN: &str = "iqn.2026-12.lab.kiln:node-1";
const LUN_BYTES: u64 = 64 * 1024 * 1024;

fn portal() -> SocketAddr {
    format!("{SERVER}:3260").parse().unwrap()
}

fn lun_url(user: Option<&str>, iqn: &str) -> String {
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    format!("iscsi://{user}{SERVER}/{iqn}/1")
}

fn start(net: &TestNet) -> TgtServer {
    let started = Instant::now();
    let server = TgtServer::start(&net.nas, portal(), &net.dir.join("tgt/tgtd.log")).unwrap();
    println!("tgtd ready in {:?}", started.elapsed());
    server
}

fn sparse_file(net: &TestNet, name: &str) -> std::path::PathBuf {
    let path = net.dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .set_len(LUN_BYTES)
        .unwrap();
    path
}

#[test]
fn tgt_serves_a_truenas_lun_to_the_allowed_initiator_only() {
    let net = TestNet::new("tgt-acl");
    let server = start(&net);
    let backing = sparse_file(&net, "zvol-pvc-test");
    server.add_target(IQN).unwrap();
    let mut lun = Lun::truenas(1, &backing);
    lun.serial = Some("kiln0001".to_string());
    server.add_lun(IQN, &lun).unwrap();
    server
        .allow(IQN, &Initiator::Address(NODE.to_string()))
        .unwrap();

    let node = |args: &[&str]| net.run(&net.node, args, &[]);
    let listing = node(&[
        "iscsi-ls",
        "-s",
        "-i",
        NODE_IQN,
        &format!("iscsi://{SERVER}"),
    ]);
    let listing = text(&listing);
    assert!(listing.contains(&format!("Target:{IQN}")), "{listing}");
    assert!(
        listing.contains("Lun:1") && listing.contains("DIRECT_ACCESS"),
        "{listing}"
    );

    let inquiry = text(&node(&["iscsi-inq", "-i", NODE_IQN, &lun_url(None, IQN)]));
    assert!(inquiry.contains("Vendor:TrueNAS"), "{inquiry}");
    assert!(inquiry.contains("Product:iSCSI Disk"), "{inquiry}");
    let capacity = text(&node(&[
        "iscsi-readcapacity16",
        "-i",
        NODE_IQN,
        &lun_url(None, IQN),
    ]));
    assert!(
        capacity.contains(&format!("Total size:{LUN_BYTES}")),
        "{capacity}"
    );

    // libiscsi's WRITE16 test writes blocks of 0xa6 at the start of the LUN.
    let write = node(&[
        "iscsi-test-cu",
        "--dataloss",
        "--fail",
        "--silent",
        "--test",
        "SCSI.Write16.Simple",
        "-i",
        NODE_IQN,
        &lun_url(None, IQN),
    ]);
    assert!(write.status.success(), "{}", text(&write));
    let written = std::fs::read(&backing).unwrap();
    assert!(
        written[..512].iter().all(|&b| b == 0xa6),
        "the WRITE did not land in {}",
        backing.display()
    );

    // Another address: discovery shows nothing, a login is refused.
    let stranger = |args: &[&str]| net.run(&net.stranger, args, &[]);
    let hidden = text(&stranger(&[
        "iscsi-ls",
        "-s",
        "-i",
        NODE_IQN,
        &format!("iscsi://{SERVER}"),
    ]));
    assert!(
        !hidden.contains(IQN),
        "the stranger discovered the target: {hidden}"
    );
    let refused = stranger(&["iscsi-inq", "-i", NODE_IQN, &lun_url(None, IQN)]);
    assert!(
        !refused.status.success(),
        "the stranger logged in: {}",
        text(&refused)
    );

    let state = server.targets().unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].iqn, IQN);
    assert_eq!(state[0].acl, vec![NODE.to_string()]);
    let disk = state[0].luns.iter().find(|l| l.id == 1).unwrap();
    assert_eq!(disk.backing.as_deref(), Some(backing.as_path()));
    // (libiscsi 1.19's iscsi-inq ignores --pagecode, so the serial is checked on tgtd's side.)
    assert_eq!(disk.serial, "kiln0001");
    assert!(!disk.read_only);
    let mut read_only = Lun::truenas(2, &backing);
    read_only.read_only = true;
    server.add_lun(IQN, &read_only).unwrap();
    let state = server.targets().unwrap();
    assert!(
        state[0].luns.iter().any(|l| l.id == 2 && l.read_only),
        "{state:?}"
    );
    server.remove_lun(IQN, 2).unwrap();

    // Allowed by name instead: the node's IQN gets in from anywhere, another IQN does not.
    server
        .disallow(IQN, &Initiator::Address(NODE.to_string()))
        .unwrap();
    server
        .allow(IQN, &Initiator::Name(NODE_IQN.to_string()))
        .unwrap();
    let by_name = stranger(&["iscsi-inq", "-i", NODE_IQN, &lun_url(None, IQN)]);
    assert!(by_name.status.success(), "{}", text(&by_name));
    let other_name = stranger(&[
        "iscsi-inq",
        "-i",
        "iqn.2026-12.lab.kiln:other",
        &lun_url(None, IQN),
    ]);
    assert!(!other_name.status.success(), "{}", text(&other_name));

    // Errors name the operation, the target and what tgtadm said.
    let lun_zero = server.add_lun(IQN, &Lun::truenas(0, &backing));
    assert!(
        matches!(lun_zero, Err(StorageError::Invalid(_))),
        "{lun_zero:?}"
    );
    let twice = server.add_lun(IQN, &Lun::truenas(1, &backing)).unwrap_err();
    let message = twice.to_string();
    assert!(
        message.starts_with(&format!("tgtadm add LUN on {IQN}: ")),
        "{message}"
    );
    assert!(message.contains("already exists"), "{message}");

    server.remove_lun(IQN, 1).unwrap();
    server.remove_target(IQN).unwrap();
    assert!(server.targets().unwrap().is_empty());
    server.shutdown().unwrap();
    assert_eq!(net.leftover_pids(), Vec::<String>::new());
}

#[test]
fn tgt_chap_refuses_a_login_without_the_secret_and_accepts_one_with_it() {
    let net = TestNet::new("tgt-chap");
    let server = start(&net);
    let backing = sparse_file(&net, "zvol-chap");
    server.add_target(IQN).unwrap();
    server.add_lun(IQN, &Lun::truenas(1, &backing)).unwrap();
    server
        .allow(IQN, &Initiator::Address("ALL".to_string()))
        .unwrap();
    let secret = "kiln-chap-secret-1";
    server.add_chap_account("node-user", secret).unwrap();
    server
        .bind_chap(IQN, "node-user", ChapDirection::Incoming)
        .unwrap();

    let inquire = |user: Option<&str>, password: Option<&str>| {
        // libiscsi reads the secret from the environment: it stays off the command line.
        let env: Vec<(&str, &str)> = password
            .map(|p| vec![("LIBISCSI_CHAP_PASSWORD", p)])
            .unwrap_or_default();
        net.run(
            &net.node,
            &["iscsi-inq", "-i", NODE_IQN, &lun_url(user, IQN)],
            &env,
        )
    };
    let anonymous = inquire(None, None);
    assert!(!anonymous.status.success());
    assert!(
        text(&anonymous).contains("Authentication failure"),
        "{}",
        text(&anonymous)
    );
    let wrong = inquire(Some("node-user"), Some("not-the-secret"));
    assert!(!wrong.status.success(), "{}", text(&wrong));
    let right = inquire(Some("node-user"), Some(secret));
    assert!(right.status.success(), "{}", text(&right));
    assert!(text(&right).contains("Vendor:TrueNAS"));

    let state = server.targets().unwrap();
    assert_eq!(state[0].accounts.len(), 1);
    assert_eq!(state[0].accounts[0].user, "node-user");

    server
        .unbind_chap(IQN, "node-user", ChapDirection::Incoming)
        .unwrap();
    server.remove_chap_account("node-user").unwrap();
    let open_again = inquire(None, None);
    assert!(open_again.status.success(), "{}", text(&open_again));

    let log = server.log().to_path_buf();
    server.shutdown().unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(!log.contains(secret), "the CHAP secret is in tgtd's log");
    assert_eq!(net.leftover_pids(), Vec::<String>::new());
}

#[test]
fn two_tgt_servers_run_side_by_side_and_a_dropped_one_leaves_nothing() {
    let first_net = TestNet::new("tgt-two-a");
    let second_net = TestNet::new("tgt-two-b");
    let first = start(&first_net);
    let second = start(&second_net);
    first.add_target(IQN).unwrap();
    assert!(
        second.targets().unwrap().is_empty(),
        "the servers share state"
    );
    // Dropped with a target still there (tgtd would ignore SIGTERM): killed, not leaked.
    drop(first);
    common::wait_until_empty(&first_net);
    second.shutdown().unwrap();
    assert_eq!(second_net.leftover_pids(), Vec::<String>::new());
}

#[test]
fn a_portal_address_the_namespace_lacks_fails_the_start_with_tgtds_words() {
    let net = TestNet::new("tgt-portal");
    let started = Instant::now();
    let elsewhere: SocketAddr = "10.213.7.9:3260".parse().unwrap();
    let error = TgtServer::start(&net.nas, elsewhere, &net.dir.join("tgt/tgtd.log"))
        .err()
        .expect("tgtd started on an address its namespace does not have");
    let message = error.to_string();
    // Left alone, tgtd would listen on every address of the namespace instead.
    assert!(
        message.contains("failed to create/bind to portal 10.213.7.9:3260"),
        "{message}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    common::wait_until_empty(&net);
}

#[test]
fn tgt_apply_makes_the_server_serve_exactly_the_desired_targets() {
    let net = TestNet::new("tgt-apply");
    let server = start(&net);
    let first_file = sparse_file(&net, "zvol-a");
    let second_file = sparse_file(&net, "zvol-b");
    let other_iqn = "iqn.2005-10.org.freenas.ctl:kiln-pvc-other";
    let chap = |secret: &str| {
        Some(ChapSpec {
            user: "node-user".to_string(),
            secret: secret.to_string(),
            mutual: None,
        })
    };
    let inquire = |namespace: &str, iqn: &str, password: Option<&str>| {
        let user = password.map(|_| "node-user");
        let env: Vec<(&str, &str)> = password
            .map(|p| vec![("LIBISCSI_CHAP_PASSWORD", p)])
            .unwrap_or_default();
        let out = net.run(
            namespace,
            &["iscsi-inq", "-i", NODE_IQN, &lun_url(user, iqn)],
            &env,
        );
        out.status.success()
    };

    let first = vec![TargetSpec {
        iqn: IQN.to_string(),
        luns: vec![Lun::truenas(1, &first_file)],
        allowed: vec![Initiator::Address(NODE.to_string())],
        chap: chap("first-secret"),
    }];
    server.apply(&first).unwrap();
    assert!(inquire(&net.node, IQN, Some("first-secret")));
    assert!(!inquire(&net.node, IQN, None), "CHAP was not required");
    assert!(
        !inquire(&net.stranger, IQN, Some("first-secret")),
        "the ACL let the stranger in"
    );
    let applied = server.targets().unwrap();
    server.apply(&first).unwrap();
    assert_eq!(
        server.targets().unwrap(),
        applied,
        "a second apply changed something"
    );

    // Another ACL, a new secret, a second LUN, a second target without CHAP.
    let second = vec![
        TargetSpec {
            iqn: IQN.to_string(),
            luns: vec![Lun::truenas(1, &first_file), Lun::truenas(2, &second_file)],
            allowed: vec![Initiator::Address(STRANGER.to_string())],
            chap: chap("second-secret"),
        },
        TargetSpec {
            iqn: other_iqn.to_string(),
            luns: vec![Lun::truenas(1, &second_file)],
            allowed: vec![Initiator::Address("ALL".to_string())],
            chap: None,
        },
    ];
    server.apply(&second).unwrap();
    assert!(inquire(&net.stranger, IQN, Some("second-secret")));
    assert!(
        !inquire(&net.stranger, IQN, Some("first-secret")),
        "the old secret still works"
    );
    assert!(
        !inquire(&net.node, IQN, Some("second-secret")),
        "the old ACL still holds"
    );
    assert!(inquire(&net.node, other_iqn, None));
    let state = server.targets().unwrap();
    assert_eq!(state.len(), 2);
    let luns: Vec<u32> = state[0].luns.iter().map(|l| l.id).collect();
    assert_eq!(luns, vec![0, 1, 2]);
    assert_eq!(state[0].acl, vec![STRANGER.to_string()]);

    // Mutual CHAP: the initiator checks the target's own credential too.
    let mut mutual = second.clone();
    mutual[1].chap = Some(ChapSpec {
        user: "node-user".to_string(),
        secret: "second-secret".to_string(),
        mutual: Some(ChapCredential {
            user: "target-user".to_string(),
            secret: "target-secret-1".to_string(),
        }),
    });
    server.apply(&mutual).unwrap();
    let mutual_login = |target_secret: &str| {
        let env = [
            ("LIBISCSI_CHAP_PASSWORD", "second-secret"),
            ("LIBISCSI_CHAP_TARGET_USERNAME", "target-user"),
            ("LIBISCSI_CHAP_TARGET_PASSWORD", target_secret),
        ];
        let url = lun_url(Some("node-user"), other_iqn);
        net.run(&net.node, &["iscsi-inq", "-i", NODE_IQN, &url], &env)
    };
    let genuine = mutual_login("target-secret-1");
    assert!(genuine.status.success(), "{}", text(&genuine));
    let impostor = mutual_login("not-the-target-secret");
    assert!(!impostor.status.success(), "{}", text(&impostor));
    let bound = &server.targets().unwrap()[1].accounts;
    assert!(
        bound.iter().any(|a| a.user == "target-user" && a.outgoing),
        "{bound:?}"
    );

    server.apply(&[]).unwrap();
    assert!(server.targets().unwrap().is_empty());
    server.shutdown().unwrap();
    assert_eq!(net.leftover_pids(), Vec::<String>::new());
}

#[test]
fn servers_a_crashed_caller_left_running_are_stopped_by_their_pid_files() {
    let net = TestNet::new("leftovers");
    let tgt = start(&net);
    tgt.add_target(IQN).unwrap();
    let pool = net.dir.join("tank");
    std::fs::create_dir_all(&pool).unwrap();
    let ganesha = GaneshaServer::start(GaneshaOptions {
        namespace: net.nas.clone(),
        listen: SERVER.parse().unwrap(),
        state_dir: net.dir.join("ganesha"),
        pools: vec![PoolMount {
            source: pool,
            served: "/mnt/tank".into(),
        }],
        nfs_v3: true,
    })
    .unwrap();
    // As if the caller had been SIGKILLed: no shutdown, no Drop.
    std::mem::forget(tgt);
    std::mem::forget(ganesha);
    assert_eq!(
        net.leftover_pids().len(),
        3,
        "tgtd, ganesha and rpcbind should be running"
    );

    let mut killed = stop_leftovers(&net.dir.join("tgt"));
    killed.extend(stop_leftovers(&net.dir.join("ganesha")));
    assert_eq!(killed.len(), 3, "{killed:?}");
    common::wait_until_empty(&net);
    assert!(!net.dir.join("tgt/tgtd.pid").exists());
    assert!(
        stop_leftovers(&net.dir.join("ganesha")).is_empty(),
        "a second call found more"
    );
}
