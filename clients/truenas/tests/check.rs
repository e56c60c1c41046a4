//! The TrueNAS side of `kiln storage check` against the emulator: the test
//! LUN and export are made, and removed without a trace — and a failed
//! step removes what was already made.

mod common;

use kiln_lab_truenas::TruenasFaults;
use kiln_truenas::ensure::{self, DesiredIscsi, DesiredNfs, DesiredStorage};
use kiln_truenas::*;

use common::{connect, mutating_calls, start_nas};

fn desired() -> DesiredStorage {
    DesiredStorage {
        cluster: "lab".into(),
        datasets: vec!["tank/k8s/lab/iscsi".into()],
        iscsi: Some(DesiredIscsi {
            portal: "0.0.0.0:3260".parse().expect("portal address"),
            initiators: [initiator_name("lab", "node-1").expect("IQN")].into(),
            chap: None,
        }),
        nfs: Some(DesiredNfs {
            dataset: "tank/k8s/lab/nfs".into(),
            networks: ["10.213.7.0/24".to_owned()].into(),
        }),
        csi_account: None,
    }
}

#[tokio::test]
async fn the_check_lun_is_made_and_removed_without_a_trace() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let plan = ensure::plan(&client, &desired()).await.unwrap();
    let ids = ensure::apply(&client, plan).await.unwrap();

    let request = CheckLunRequest {
        name: "kiln-check-node-1".into(),
        parent: "tank/k8s/lab/iscsi".into(),
        size_bytes: 64 << 20,
        portal_id: ids.portal_id.unwrap(),
        initiator_group_id: ids.initiator_group_id.unwrap(),
        chap_tag: None,
    };
    let lun = client.create_check_lun(&request).await.unwrap();
    let basename = client.iscsi_global().await.unwrap().basename;
    assert_eq!(lun.iqn, format!("{basename}:kiln-check-node-1"));
    assert_eq!(lun.lun, 0);
    let zvol = client.dataset(&lun.zvol).await.unwrap().unwrap();
    assert!(zvol.is_volume());
    assert_eq!(zvol.user_property("kiln:check"), Some("true"));
    let targets = client.targets(&[]).await.unwrap();
    assert_eq!(targets[0].groups[0].initiator, ids.initiator_group_id);
    assert_eq!(client.target_extents(&[]).await.unwrap().len(), 1);

    client.remove_check_lun(lun.clone()).await.unwrap();
    assert!(client.targets(&[]).await.unwrap().is_empty());
    assert!(client.extents(&[]).await.unwrap().is_empty());
    assert!(client.target_extents(&[]).await.unwrap().is_empty());
    assert!(!nas.dataset_exists(&lun.zvol));
    assert!(nas.dataset_exists("tank/k8s/lab/iscsi"));
    let deletes = mutating_calls(&nas)
        .into_iter()
        .filter(|m| m == "pool.dataset.delete")
        .count();
    assert_eq!(deletes, 1, "only the test zvol is deleted");
    nas.shutdown().await;
}

#[tokio::test]
async fn a_failed_step_removes_what_was_made() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let plan = ensure::plan(&client, &desired()).await.unwrap();
    ensure::apply(&client, plan).await.unwrap();
    let request = CheckLunRequest {
        name: "kiln-check-node-1".into(),
        parent: "tank/k8s/lab/iscsi".into(),
        size_bytes: 64 << 20,
        portal_id: 999,
        initiator_group_id: 999,
        chap_tag: None,
    };
    let error = client.create_check_lun(&request).await.unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    assert!(!nas.dataset_exists("tank/k8s/lab/iscsi/kiln-check-node-1"));
    assert!(client.targets(&[]).await.unwrap().is_empty());
    nas.shutdown().await;
}

#[tokio::test]
async fn the_check_share_is_made_and_removed() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let plan = ensure::plan(&client, &desired()).await.unwrap();
    ensure::apply(&client, plan).await.unwrap();

    let share = client
        .create_check_share("kiln-check", "tank/k8s/lab/nfs", &["10.213.7.0/24".into()])
        .await
        .unwrap();
    assert_eq!(share.path, "/mnt/tank/k8s/lab/nfs/kiln-check");
    let shares = client.nfs_shares(&[]).await.unwrap();
    let made = shares.iter().find(|s| s.path == share.path).unwrap();
    assert_eq!(made.maproot_user.as_deref(), Some("root"));
    nas.write_file(&share.dataset, "probe", b"written by a node")
        .unwrap();

    client.remove_check_share(share.clone()).await.unwrap();
    assert!(!nas.dataset_exists(&share.dataset));
    assert_eq!(
        client.nfs_shares(&[]).await.unwrap().len(),
        1,
        "kiln's own export stays"
    );
    assert!(nas.dataset_exists("tank/k8s/lab/nfs"));
    nas.shutdown().await;
}

#[tokio::test]
async fn kiln_methods_cover_connect_ensure_and_check() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let mut want = desired();
    if let Some(iscsi) = &mut want.iscsi {
        iscsi.portal = "0.0.0.0:3261".parse().expect("portal address");
        iscsi.chap = Some(ensure::ChapCredentials {
            user: "kiln-lab".into(),
            secret: secrecy::SecretString::from("chap-secret-0123"),
        });
    }
    let plan = ensure::plan(&client, &want).await.unwrap();
    let ids = ensure::apply(&client, plan).await.unwrap();
    let lun = client
        .create_check_lun(&CheckLunRequest {
            name: "kiln-check".into(),
            parent: "tank/k8s/lab/iscsi".into(),
            size_bytes: 64 << 20,
            portal_id: ids.portal_id.unwrap(),
            initiator_group_id: ids.initiator_group_id.unwrap(),
            chap_tag: ids.chap_tag,
        })
        .await
        .unwrap();
    client.remove_check_lun(lun).await.unwrap();
    let share = client
        .create_check_share("kiln-check", "tank/k8s/lab/nfs", &["10.213.7.0/24".into()])
        .await
        .unwrap();
    client.remove_check_share(share).await.unwrap();
    client.system_version().await.unwrap();

    let called: std::collections::BTreeSet<String> =
        nas.calls().into_iter().map(|c| c.method).collect();
    for method in &called {
        assert!(
            KILN_METHODS.contains(&method.as_str()),
            "{method} is missing from KILN_METHODS (and its roles from KILN_ROLES)"
        );
    }
    nas.shutdown().await;
}
