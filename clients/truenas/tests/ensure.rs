//! `ensure` against the TrueNAS emulator: from empty to everything, then
//! nothing to do; nodes coming and going; data never deleted; what kiln did
//! not make left alone.

mod common;

use std::collections::BTreeSet;

use kiln_lab_truenas::TruenasFaults;
use kiln_truenas::ensure::{
    self, Change, ChapCredentials, DesiredIscsi, DesiredNfs, DesiredStorage,
};
use kiln_truenas::*;
use secrecy::SecretString;

use common::{connect, mutating_calls, start_nas};

const CHAP_SECRET: &str = "chap-secret-0123";

fn desired(nodes: &[&str], networks: &[&str]) -> DesiredStorage {
    DesiredStorage {
        cluster: "lab".into(),
        datasets: vec!["tank/k8s/lab/iscsi".into(), "tank/k8s/lab/snaps".into()],
        iscsi: Some(DesiredIscsi {
            portal: "0.0.0.0:3260".parse().expect("portal address"),
            initiators: nodes
                .iter()
                .map(|node| initiator_name("lab", node).expect("node IQN"))
                .collect(),
            chap: Some(ChapCredentials {
                user: "kiln-lab".into(),
                secret: SecretString::from(CHAP_SECRET),
            }),
        }),
        nfs: Some(DesiredNfs {
            dataset: "tank/k8s/lab/nfs".into(),
            networks: networks.iter().map(|n| (*n).to_owned()).collect(),
        }),
        csi_account: None,
    }
}

async fn ensure(client: &TruenasClient, desired: &DesiredStorage) -> ensure::StorageIds {
    let plan = ensure::plan(client, desired).await.expect("plan");
    ensure::apply(client, plan).await.expect("apply")
}

#[tokio::test]
async fn from_empty_everything_is_created_and_a_second_run_changes_nothing() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = desired(&["node-1", "node-2"], &["10.213.7.0/24"]);

    let plan = ensure::plan(&client, &want).await.unwrap();
    assert!(mutating_calls(&nas).is_empty(), "plan must only read");
    let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    for expected in [
        "dataset tank/k8s/lab/iscsi: create",
        "dataset tank/k8s/lab/nfs: create",
        "dataset tank/k8s/lab/snaps: create",
        "iSCSI portal on 0.0.0.0: create",
        "service iscsitarget: start",
        "service nfs: start",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} not in {lines:#?}"
        );
    }
    for shown in lines.iter().cloned().chain([format!("{plan:?}")]) {
        assert!(!shown.contains(CHAP_SECRET), "secret shown: {shown}");
        assert!(!shown.contains(nas.api_key()), "key shown: {shown}");
    }

    let ids = ensure::apply(&client, plan).await.unwrap();
    let (Some(portal_id), Some(group_id), Some(chap_tag), Some(share_id)) = (
        ids.portal_id,
        ids.initiator_group_id,
        ids.chap_tag,
        ids.nfs_share_id,
    ) else {
        panic!("ids missing: {ids:?}");
    };

    // What is on the NAS now.
    let portal = &client.portals(&[]).await.unwrap()[0];
    assert_eq!(
        (portal.id, portal.comment.as_str()),
        (portal_id, "kiln:lab")
    );
    let groups = client.initiator_groups(&[]).await.unwrap();
    let group = groups.iter().find(|g| g.id == group_id).unwrap();
    let want_iqns = want.iscsi.as_ref().unwrap().initiators.clone();
    assert_eq!(
        group.initiators.iter().cloned().collect::<BTreeSet<_>>(),
        want_iqns
    );
    let auths = client.chap_auths(&[]).await.unwrap();
    assert_eq!(
        (auths[0].tag, auths[0].user.as_str()),
        (chap_tag, "kiln-lab")
    );
    let share = &client.nfs_shares(&[]).await.unwrap()[0];
    assert_eq!(share.id, share_id);
    assert_eq!(share.path, "/mnt/tank/k8s/lab/nfs");
    assert_eq!(share.networks, ["10.213.7.0/24"]);
    assert!(
        client
            .nfs_config()
            .await
            .unwrap()
            .protocols
            .contains(&NfsProtocol::V4)
    );
    for service in client.services(&[]).await.unwrap() {
        if ["iscsitarget", "nfs"].contains(&service.service.as_str()) {
            assert!(service.enable && service.is_running(), "{service:?}");
        }
    }
    for dataset in [
        "tank/k8s/lab/iscsi",
        "tank/k8s/lab/snaps",
        "tank/k8s/lab/nfs",
    ] {
        let found = client.dataset(dataset).await.unwrap().unwrap();
        assert_eq!(
            found.user_property("kiln:cluster"),
            Some("lab"),
            "{dataset}"
        );
    }

    // The second run: nothing to do, no state-changing call, same ids.
    let before = mutating_calls(&nas).len();
    let again = ensure::plan(&client, &want).await.unwrap();
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    assert_eq!(ensure::apply(&client, again).await.unwrap(), ids);
    assert_eq!(
        mutating_calls(&nas).len(),
        before,
        "{:?}",
        mutating_calls(&nas)
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn nodes_added_and_removed_follow_into_group_and_export() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let first = ensure(
        &client,
        &desired(&["node-1", "node-2"], &["10.213.7.1/32", "10.213.7.2/32"]),
    )
    .await;

    let next = desired(&["node-2", "node-3"], &["10.213.7.2/32", "10.213.7.3/32"]);
    let plan = ensure::plan(&client, &next).await.unwrap();
    let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    let node = |n: &str| initiator_name("lab", n).unwrap();
    assert_eq!(
        lines,
        [
            format!(
                "iSCSI initiator group #{}: add {}; remove {}",
                first.initiator_group_id.unwrap(),
                node("node-3"),
                node("node-1")
            ),
            format!(
                "NFS export #{} /mnt/tank/k8s/lab/nfs: add 10.213.7.3/32; remove 10.213.7.1/32",
                first.nfs_share_id.unwrap()
            ),
        ]
    );
    assert!(matches!(
        plan.changes[0],
        Change::UpdateInitiatorGroup { .. }
    ));
    assert_eq!(ensure::apply(&client, plan).await.unwrap(), first);

    let group = &client.initiator_groups(&[]).await.unwrap()[0];
    let have: BTreeSet<String> = group.initiators.iter().cloned().collect();
    assert_eq!(have, next.iscsi.as_ref().unwrap().initiators);
    let share = &client.nfs_shares(&[]).await.unwrap()[0];
    assert_eq!(
        share.networks.iter().cloned().collect::<BTreeSet<_>>(),
        next.nfs.as_ref().unwrap().networks
    );
    assert!(
        ensure::plan(&client, &next)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn datasets_holding_data_are_never_deleted() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    // Someone's dataset with data, exactly where kiln wants its NFS parent.
    client
        .create_dataset(&NewDataset {
            name: "tank/k8s/lab/nfs".into(),
            kind: DatasetKind::Filesystem,
            user_properties: vec![],
            create_ancestors: true,
        })
        .await
        .unwrap();
    nas.write_file("tank/k8s/lab/nfs", "precious.txt", b"keep me")
        .unwrap();
    ensure(&client, &desired(&["node-1"], &["10.213.7.0/24"])).await;
    nas.write_file("tank/k8s/lab/iscsi", "also-precious.txt", b"and me")
        .unwrap();

    // The cluster drops NFS and the iSCSI parent moves: nothing is deleted.
    let mut moved = desired(&["node-1"], &["10.213.7.0/24"]);
    moved.datasets = vec!["tank/k8s/lab/iscsi2".into()];
    moved.nfs = None;
    ensure(&client, &moved).await;

    let methods = mutating_calls(&nas);
    assert!(
        !methods.iter().any(|m| m == "pool.dataset.delete"),
        "{methods:?}"
    );
    assert!(
        !methods.iter().any(|m| m == "pool.dataset.update"),
        "{methods:?}"
    );
    for dataset in [
        "tank/k8s/lab/nfs",
        "tank/k8s/lab/iscsi",
        "tank/k8s/lab/snaps",
    ] {
        assert!(nas.dataset_exists(dataset), "{dataset} is gone");
    }
    let kept = client.dataset("tank/k8s/lab/nfs").await.unwrap().unwrap();
    assert!(kept.used_bytes().unwrap_or(0) > 0, "{kept:?}");
    // The existing dataset was used as it was: kiln did not mark it.
    assert_eq!(kept.user_property("kiln:cluster"), None);
    nas.shutdown().await;
}

#[tokio::test]
async fn objects_kiln_did_not_create_are_left_alone() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let someone = initiator_name("other", "their-node").unwrap();
    let their_group = client
        .create_initiator_group(&NewInitiatorGroup {
            initiators: vec![someone.clone()],
            comment: "kiln:lab (hand-made)".into(),
        })
        .await
        .unwrap();
    client
        .create_dataset(&NewDataset {
            name: "tank/media".into(),
            kind: DatasetKind::Filesystem,
            user_properties: vec![],
            create_ancestors: false,
        })
        .await
        .unwrap();
    let their_share = client
        .create_nfs_share(&NewNfsShare {
            path: "/mnt/tank/media".into(),
            comment: "media".into(),
            networks: vec!["192.168.1.0/24".into()],
            hosts: vec![],
            ro: true,
            maproot_user: None,
            maproot_group: None,
            enabled: true,
        })
        .await
        .unwrap();
    // A portal on the address kiln wants: used, not changed.
    let their_portal = client
        .create_portal(&NewPortal {
            listen: vec![PortalIp {
                ip: "0.0.0.0".into(),
            }],
            comment: "manual".into(),
        })
        .await
        .unwrap();
    let before = mutating_calls(&nas).len();

    let ids = ensure(&client, &desired(&["node-1"], &["10.213.7.0/24"])).await;
    assert_eq!(ids.portal_id, Some(their_portal.id));
    assert_ne!(ids.initiator_group_id, Some(their_group.id));
    assert_ne!(ids.nfs_share_id, Some(their_share.id));

    assert_eq!(client.portals(&[]).await.unwrap(), vec![their_portal]);
    let groups = client.initiator_groups(&[]).await.unwrap();
    assert!(groups.contains(&their_group), "{groups:?}");
    let shares = client.nfs_shares(&[]).await.unwrap();
    assert!(shares.contains(&their_share), "{shares:?}");
    let touched: Vec<String> = mutating_calls(&nas)[before..]
        .iter()
        .filter(|m| m.ends_with(".delete") || m.starts_with("iscsi.portal."))
        .cloned()
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    nas.shutdown().await;
}

#[tokio::test]
async fn unsafe_desires_are_refused_before_anything_is_sent() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let mut open_to_all = desired(&[], &["10.213.7.0/24"]);
    let error = ensure::plan(&client, &open_to_all).await.unwrap_err();
    assert!(
        error.to_string().contains("admit every initiator"),
        "{error}"
    );
    open_to_all = desired(&["node-1"], &[]);
    let error = ensure::plan(&client, &open_to_all).await.unwrap_err();
    assert!(error.to_string().contains("open to everybody"), "{error}");
    let mut short_secret = desired(&["node-1"], &["10.213.7.0/24"]);
    if let Some(iscsi) = &mut short_secret.iscsi {
        iscsi.chap = Some(ChapCredentials {
            user: "kiln-lab".into(),
            secret: SecretString::from("short"),
        });
    }
    let error = ensure::plan(&client, &short_secret).await.unwrap_err();
    assert!(error.to_string().contains("12 to 16"), "{error}");
    assert!(!error.to_string().contains("short\""), "{error}");
    assert!(mutating_calls(&nas).is_empty());
    nas.shutdown().await;
}
