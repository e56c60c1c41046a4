//! The client against the TrueNAS emulator: every call kiln makes, the
//! transport's refusals (pin, key), classified errors, jobs, reconnects,
//! and the API key kept out of every output.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use kiln_lab_truenas::TruenasFaults;
use kiln_truenas::*;
use secrecy::SecretString;

use common::{client_config, connect, mutating_calls, start_nas};

#[tokio::test]
async fn connects_to_the_pinned_version_and_reads_the_system() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    assert_eq!(client.api_version(), PINNED_API_VERSION);
    assert!(
        client
            .system_version()
            .await
            .unwrap()
            .starts_with("TrueNAS-")
    );
    let short = client.system_version_short().await.unwrap();
    let info = client.system_info().await.unwrap();
    assert_eq!(info.version, short);
    nas.shutdown().await;
}

#[tokio::test]
async fn logs_in_without_a_username_through_login_with_api_key() {
    let nas = start_nas(TruenasFaults::default()).await;
    let mut config = client_config(&nas);
    config.username = None;
    let client = TruenasClient::connect(config).await.unwrap();
    assert!(client.system_version().await.is_ok());
    let methods: Vec<String> = nas.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods[0], "auth.login_with_api_key", "{methods:?}");
    nas.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_naming_the_method() {
    let nas = start_nas(TruenasFaults {
        call_delay: Some(Duration::from_secs(2)),
        ..TruenasFaults::default()
    })
    .await;
    let mut config = client_config(&nas);
    config.call_timeout = Duration::from_millis(300);
    let error = TruenasClient::connect(config).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(&error, Error::Timeout { method, mutating: false, .. } if method == "auth.login_ex"),
        "{text}"
    );
    assert!(text.contains("no answer within 300ms"), "{text}");
    nas.shutdown().await;
}

#[tokio::test]
async fn every_call_kiln_makes() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;

    // Datasets: a filesystem, a zvol, lookups, and their deletion.
    let parent = client
        .create_dataset(&NewDataset {
            name: "tank/k8s/calls/nfs".into(),
            kind: DatasetKind::Filesystem,
            user_properties: vec![UserProperty {
                key: "kiln:cluster".into(),
                value: "calls".into(),
            }],
            create_ancestors: true,
        })
        .await
        .unwrap();
    assert_eq!(parent.id, "tank/k8s/calls/nfs");
    let zvol = client
        .create_dataset(&NewDataset {
            name: "tank/k8s/calls/check".into(),
            kind: DatasetKind::Volume {
                volsize: 64 << 20,
                volblocksize: Some(VolBlockSize::K16),
                sparse: true,
            },
            user_properties: vec![],
            create_ancestors: false,
        })
        .await
        .unwrap();
    assert!(zvol.is_volume());
    let found = client
        .datasets(&[Filter::is_in(
            "id",
            &["tank/k8s/calls/nfs", "tank/k8s/calls/check"],
        )])
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let got = client.dataset("tank/k8s/calls/nfs").await.unwrap().unwrap();
    assert_eq!(got.user_property("kiln:cluster"), Some("calls"));
    assert!(client.dataset("tank/nope").await.unwrap().is_none());

    // iSCSI: global, portal, initiator group, CHAP, and a test LUN.
    let global = client.iscsi_global().await.unwrap();
    let global = client
        .update_iscsi_global(&IscsiGlobalUpdate {
            listen_port: Some(global.listen_port),
            ..IscsiGlobalUpdate::default()
        })
        .await
        .unwrap();
    let portal = client
        .create_portal(&NewPortal {
            listen: vec![PortalIp {
                ip: "0.0.0.0".into(),
            }],
            comment: "kiln:calls".into(),
        })
        .await
        .unwrap();
    let portal = client
        .update_portal(
            portal.id,
            &PortalUpdate {
                listen: None,
                comment: Some("kiln:calls2".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(client.portals(&[]).await.unwrap(), vec![portal.clone()]);
    let iqn = initiator_name("calls", "node-1").unwrap();
    let group = client
        .create_initiator_group(&NewInitiatorGroup {
            initiators: vec![iqn.clone()],
            comment: "kiln:calls".into(),
        })
        .await
        .unwrap();
    let group = client
        .update_initiator_group(
            group.id,
            &InitiatorGroupUpdate {
                initiators: Some(vec![
                    iqn.clone(),
                    initiator_name("calls", "node-2").unwrap(),
                ]),
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(group.initiators.len(), 2);
    assert_eq!(
        client
            .initiator_groups(&[Filter::eq("comment", "kiln:calls")])
            .await
            .unwrap(),
        vec![group.clone()]
    );
    let auth = client
        .create_chap_auth(&NewChapAuth {
            tag: 1,
            user: "kiln-calls".into(),
            secret: SecretString::from("0123456789abcd"),
        })
        .await
        .unwrap();
    client
        .update_chap_auth(
            auth.id,
            &ChapAuthUpdate {
                user: None,
                secret: Some(SecretString::from("abcd0123456789")),
            },
        )
        .await
        .unwrap();
    assert_eq!(client.chap_auths(&[]).await.unwrap().len(), 1);

    let target = client
        .create_target(&NewTarget {
            name: "kiln-calls-check".into(),
            alias: None,
            groups: vec![TargetGroup {
                portal: portal.id,
                initiator: Some(group.id),
                authmethod: AuthMethod::Chap,
                auth: Some(auth.tag),
            }],
            auth_networks: vec![],
        })
        .await
        .unwrap();
    let extent = client
        .create_extent(&NewExtent::zvol(
            "kiln-calls-check",
            "tank/k8s/calls/check",
            "kiln:calls",
        ))
        .await
        .unwrap();
    let mapping = client
        .create_target_extent(&NewTargetExtent {
            target: target.id,
            extent: extent.id,
            lunid: Some(0),
        })
        .await
        .unwrap();
    assert_eq!(client.targets(&[]).await.unwrap().len(), 1);
    assert_eq!(client.extents(&[]).await.unwrap().len(), 1);
    assert_eq!(
        client.target_extents(&[]).await.unwrap(),
        vec![mapping.clone()]
    );
    client.delete_target_extent(mapping.id).await.unwrap();
    client.delete_extent(extent.id).await.unwrap();
    client.delete_target(target.id, false).await.unwrap();
    client.delete_chap_auth(auth.id).await.unwrap();
    assert!(client.targets(&[]).await.unwrap().is_empty());
    assert!(global.listen_port > 0);

    // NFS: settings and an export.
    let config = client.nfs_config().await.unwrap();
    let config = client
        .update_nfs_config(&NfsConfigUpdate {
            protocols: Some(config.protocols.clone()),
            bindip: None,
        })
        .await
        .unwrap();
    assert!(!config.protocols.is_empty());
    let share = client
        .create_nfs_share(&NewNfsShare {
            path: "/mnt/tank/k8s/calls/nfs".into(),
            comment: "kiln:calls".into(),
            networks: vec!["10.213.7.0/24".into()],
            hosts: vec![],
            ro: false,
            maproot_user: Some("root".into()),
            maproot_group: Some("root".into()),
            enabled: true,
        })
        .await
        .unwrap();
    let share = client
        .update_nfs_share(
            share.id,
            &NfsShareUpdate {
                networks: Some(vec!["10.213.8.0/24".into()]),
                ..NfsShareUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(share.networks, ["10.213.8.0/24"]);
    assert_eq!(client.nfs_shares(&[]).await.unwrap(), vec![share.clone()]);
    client.delete_nfs_share(share.id).await.unwrap();

    // Services: enabled and started (a job).
    client.set_service_enabled("nfs", true).await.unwrap();
    client
        .control_service(ServiceVerb::Start, "nfs")
        .await
        .unwrap();
    let services = client
        .services(&[Filter::eq("service", "nfs")])
        .await
        .unwrap();
    assert!(
        services[0].enable && services[0].is_running(),
        "{services:?}"
    );

    assert!(
        client
            .delete_dataset("tank/k8s/calls/check", false)
            .await
            .unwrap()
    );

    let logged: BTreeSet<String> = nas.calls().into_iter().map(|c| c.method).collect();
    for method in [
        "pool.dataset.create",
        "pool.dataset.query",
        "pool.dataset.get_instance",
        "pool.dataset.delete",
        "iscsi.global.config",
        "iscsi.global.update",
        "iscsi.portal.create",
        "iscsi.portal.update",
        "iscsi.portal.query",
        "iscsi.initiator.create",
        "iscsi.initiator.update",
        "iscsi.initiator.query",
        "iscsi.auth.create",
        "iscsi.auth.update",
        "iscsi.auth.query",
        "iscsi.auth.delete",
        "iscsi.target.create",
        "iscsi.target.query",
        "iscsi.target.delete",
        "iscsi.extent.create",
        "iscsi.extent.query",
        "iscsi.extent.delete",
        "iscsi.targetextent.create",
        "iscsi.targetextent.query",
        "iscsi.targetextent.delete",
        "nfs.config",
        "nfs.update",
        "sharing.nfs.create",
        "sharing.nfs.update",
        "sharing.nfs.query",
        "sharing.nfs.delete",
        "service.query",
        "service.update",
        "service.control",
        "core.get_jobs",
    ] {
        assert!(
            logged.contains(method),
            "{method} not called; log: {logged:?}"
        );
    }
    assert!(!mutating_calls(&nas).is_empty());
    nas.shutdown().await;
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_naming_both_fingerprints() {
    let nas = start_nas(TruenasFaults::default()).await;
    let mut config = client_config(&nas);
    let wrong = kiln_tls::Fingerprint::from_bytes([0xAB; 32]);
    config.trust = kiln_tls::Trust::Pin(wrong);
    let error = TruenasClient::connect(config).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Transport { .. }), "{text}");
    assert!(text.contains(&wrong.to_string()), "{text}");
    assert!(text.contains(&nas.fingerprint), "{text}");
    assert!(text.contains(&nas.endpoint), "{text}");
    assert!(
        nas.calls().is_empty(),
        "nothing may be sent past a refused pin"
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_never_shows_the_key() {
    let nas = start_nas(TruenasFaults::default()).await;
    let real_id = nas.api_key().split('-').next().unwrap().to_owned();
    let wrong_key = format!("{real_id}-{}", "W".repeat(64));
    for username in [Some(nas.username().to_owned()), None] {
        let mut config = client_config(&nas);
        config.api_key = SecretString::from(wrong_key.clone());
        config.username = username.clone();
        let error = TruenasClient::connect(config.clone()).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Error::Auth { .. }), "{username:?}: {text}");
        for shown in [text, format!("{error:?}"), format!("{config:?}")] {
            assert!(!shown.contains(&wrong_key), "key shown: {shown}");
            assert!(!shown.contains(nas.api_key()), "key shown: {shown}");
        }
    }
    nas.shutdown().await;
}

#[tokio::test]
async fn the_api_key_never_shows_in_debug_output() {
    let nas = start_nas(TruenasFaults::default()).await;
    let config = client_config(&nas);
    let client = TruenasClient::connect(config.clone()).await.unwrap();
    for shown in [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{client:#?}"),
    ] {
        assert!(!shown.contains(nas.api_key()), "key shown: {shown}");
        assert!(shown.contains(&nas.endpoint), "{shown}");
    }
    nas.shutdown().await;
}

#[tokio::test]
async fn validation_errors_name_the_attribute() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let error = client
        .create_dataset(&NewDataset {
            name: "tank/bad".into(),
            kind: DatasetKind::Filesystem,
            // The schema wants `namespace:name` keys.
            user_properties: vec![UserProperty {
                key: "nocolon".into(),
                value: "x".into(),
            }],
            create_ancestors: false,
        })
        .await
        .unwrap_err();
    let text = error.to_string();
    let Error::Validation { errors, method, .. } = &error else {
        panic!("{text}");
    };
    assert_eq!(method, "pool.dataset.create");
    assert!(
        errors.iter().any(|e| e
            .attribute
            .as_deref()
            .is_some_and(|a| a.contains("user_properties"))),
        "{text}"
    );
    assert!(
        text.contains(&nas.endpoint) && text.contains("pool.dataset.create"),
        "{text}"
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_is_surfaced_with_its_error() {
    let nas = start_nas(TruenasFaults {
        failing_job: Some("service.control".into()),
        ..TruenasFaults::default()
    })
    .await;
    let client = connect(&nas).await;
    let error = client
        .control_service(ServiceVerb::Start, "iscsitarget")
        .await
        .unwrap_err();
    let text = error.to_string();
    let Error::JobFailed { method, state, .. } = &error else {
        panic!("{text}");
    };
    assert_eq!(
        (method.as_str(), state.as_str()),
        ("service.control", "FAILED")
    );
    assert!(text.contains(&nas.endpoint), "{text}");
    nas.shutdown().await;
}

/// Login and the job subscription are the first two calls of a connection.
const CALLS_TO_CONNECT: u32 = 2;

#[tokio::test]
async fn a_read_is_resent_after_the_connection_drops() {
    let nas = start_nas(TruenasFaults {
        drop_connection_after: Some(CALLS_TO_CONNECT),
        ..TruenasFaults::default()
    })
    .await;
    let client = connect(&nas).await;
    let version = client.system_version().await.unwrap();
    assert!(version.starts_with("TrueNAS-"));
    let logins = nas
        .calls()
        .iter()
        .filter(|c| c.method.starts_with("auth.login"))
        .count();
    assert_eq!(logins, 2, "{:?}", nas.calls());
    nas.shutdown().await;
}

#[tokio::test]
async fn a_change_whose_reply_was_lost_is_not_resent() {
    let nas = start_nas(TruenasFaults {
        drop_connection_after: Some(CALLS_TO_CONNECT),
        ..TruenasFaults::default()
    })
    .await;
    let client = connect(&nas).await;
    let error = client
        .create_portal(&NewPortal {
            listen: vec![PortalIp {
                ip: "0.0.0.0".into(),
            }],
            comment: "kiln:drop".into(),
        })
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::ReplyLost { .. }), "{text}");
    assert!(
        text.contains("iscsi.portal.create") && text.contains("did not send it again"),
        "{text}"
    );
    let creates = nas
        .calls()
        .iter()
        .filter(|c| c.method == "iscsi.portal.create")
        .count();
    assert_eq!(creates, 1, "sent once, never again");
    // The client is usable again afterwards (a new connection).
    assert!(client.portals(&[]).await.is_ok());
    nas.shutdown().await;
}

#[tokio::test]
async fn too_many_calls_in_flight_are_retried() {
    let nas = start_nas(TruenasFaults {
        call_delay: Some(Duration::from_millis(150)),
        ..TruenasFaults::default()
    })
    .await;
    let mut config = client_config(&nas);
    // More than the server's 20, so that it answers -32000.
    config.max_in_flight = 40;
    config.retry.min_delay = Duration::from_millis(50);
    let client = TruenasClient::connect(config).await.unwrap();
    let calls: Vec<_> = (0..30)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.system_version().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let busy = nas
        .calls()
        .iter()
        .filter(|c| c.error_code == Some(-32000))
        .count();
    assert!(busy > 0, "the server never said it was busy");
    nas.shutdown().await;
}
