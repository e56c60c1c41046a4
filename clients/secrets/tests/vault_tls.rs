//! The Vault store's TLS trust (CA file, SHA-256 pin, refusal of an unknown
//! certificate) and namespaces, against a real OpenBao dev server
//! (`-dev-tls` makes its own CA and certificate).

// Test helpers set up fixtures: a failed setup should stop the test.
#![allow(clippy::unwrap_used)]

mod secrets_bao;

use kiln_secrets::vault::setup::{MountState, ensure_kv2_mount};
use kiln_secrets::vault::{Credentials, TlsTrust, VaultClient, VaultSettings};
use kiln_secrets::{Cas, SecretStore, VaultStore};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use secrets_bao::{Bao, ROOT_TOKEN, chain, one, server_fingerprint};
use serde_json::json;

fn root_token() -> Credentials {
    Credentials::Token(SecretString::from(ROOT_TOKEN))
}

fn store_with(bao: &Bao, trust: TlsTrust) -> VaultStore {
    VaultStore::new(
        VaultSettings {
            trust,
            ..bao.settings(root_token())
        },
        "home",
    )
    .unwrap()
}

#[tokio::test]
async fn a_ca_file_or_a_pin_is_trusted_and_nothing_else() {
    let bao = Bao::start_tls().await;
    assert!(bao.address.starts_with("https://"));

    let by_ca = store_with(&bao, bao.trust());
    by_ca.write("k", one("v", "1"), Cas::Any).await.unwrap();

    let pinned = store_with(
        &bao,
        TlsTrust::Verified(kiln_tls::Trust::Pin(server_fingerprint(&bao))),
    );
    let entry = pinned.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data["v"].expose_secret(), "1");

    let wrong_pin = store_with(
        &bao,
        TlsTrust::Verified(kiln_tls::Trust::Pin(kiln_tls::Fingerprint::from_bytes(
            [7; 32],
        ))),
    );
    let error = wrong_pin.read("k").await.unwrap_err();
    let text = chain(&error);
    assert!(text.contains("cannot reach Vault"), "{text}");
    assert!(text.contains("fingerprint mismatch"), "{text}");

    // The dev CA is in no system store: the default trust refuses it.
    let system = store_with(&bao, TlsTrust::Verified(kiln_tls::Trust::System));
    match system.read("k").await {
        Ok(_) => panic!("an unknown CA was trusted"),
        Err(error) => assert!(chain(&error).contains("certificate"), "{}", chain(&error)),
    }
}

#[tokio::test]
async fn a_namespace_keeps_its_own_mounts_and_secrets() {
    let bao = Bao::start().await;
    bao.admin(Method::POST, "sys/namespaces/team", Some(json!({})))
        .await;
    let in_team = VaultClient::new(
        &bao.address,
        Some("team".to_owned()),
        bao.trust(),
        root_token(),
    )
    .unwrap();
    assert_eq!(
        ensure_kv2_mount(&in_team, "secret").await.unwrap(),
        MountState::Created
    );
    assert_eq!(
        ensure_kv2_mount(&in_team, "secret").await.unwrap(),
        MountState::Present
    );

    let team = VaultStore::new(
        VaultSettings {
            namespace: Some("team".to_owned()),
            ..bao.settings(root_token())
        },
        "home",
    )
    .unwrap();
    team.write("k", one("v", "team"), Cas::Absent)
        .await
        .unwrap();
    assert!(team.read("k").await.unwrap().is_some());
    assert!(
        bao.root_store().read("k").await.unwrap().is_none(),
        "the root namespace does not see the team's secret"
    );
}

#[tokio::test]
async fn init_refuses_a_kv_v1_mount_and_reports_when_not_allowed() {
    let bao = Bao::start().await;
    bao.admin(
        Method::POST,
        "sys/mounts/old",
        Some(json!({ "type": "kv", "options": { "version": "1" } })),
    )
    .await;
    let root = bao.root();
    let error = ensure_kv2_mount(&root, "old")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not KV version 2"), "{error}");

    bao.kiln_policy().await;
    let created = bao
        .admin(
            Method::POST,
            "auth/token/create",
            Some(json!({ "policies": ["kiln"], "no_default_policy": true })),
        )
        .await;
    let limited = VaultClient::new(
        &bao.address,
        None,
        bao.trust(),
        Credentials::Token(created["auth"]["client_token"].as_str().unwrap().into()),
    )
    .unwrap();
    assert_eq!(
        ensure_kv2_mount(&limited, "fresh").await.unwrap(),
        MountState::NotAllowed
    );
}
