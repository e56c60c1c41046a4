//! Authentication against kiln-lab: API token, ticket + CSRF, ticket
//! renewal, and wrong credentials.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod proxmox_common;

use std::time::Duration;

use kiln_lab::LabConfig;
use kiln_proxmox::*;
use proxmox_common::{TEMPLATE, client_with, start_lab};
use secrecy::SecretString;

#[tokio::test]
async fn ticket_auth_with_csrf() {
    let lab = start_lab(LabConfig {
        password: Some("lab-password".into()),
        ..LabConfig::default()
    })
    .await;
    let c = client_with(
        &lab,
        Auth::Password {
            username: lab.username.clone(),
            password: SecretString::from("lab-password".to_owned()),
        },
        proxmox_common::pin(&lab),
    );
    c.version().await.unwrap();
    // A POST: fails without the CSRF header.
    let (vmid, _) = c
        .clone_new("pve1", TEMPLATE, &CloneOptions::default(), None)
        .await
        .unwrap();
    c.run(|| c.start("pve1", vmid)).await.unwrap();

    let bad = client_with(
        &lab,
        Auth::Password {
            username: lab.username.clone(),
            password: SecretString::from("wrong".to_owned()),
        },
        proxmox_common::pin(&lab),
    );
    let err = bad.version().await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn ticket_is_renewed_when_old() {
    let lab = start_lab(LabConfig {
        password: Some("lab-password".into()),
        ..LabConfig::default()
    })
    .await;
    let auth = Auth::Password {
        username: lab.username.clone(),
        password: SecretString::from("lab-password".to_owned()),
    };
    let logins = |lab: &kiln_lab::RunningLab| {
        lab.requests()
            .iter()
            .filter(|r| r.path.ends_with("/access/ticket"))
            .count()
    };

    let c = client_with(&lab, auth.clone(), proxmox_common::pin(&lab));
    for _ in 0..3 {
        c.version().await.unwrap();
    }
    assert_eq!(logins(&lab), 1, "a fresh ticket is reused");

    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, proxmox_common::pin(&lab));
    config.ticket_renew_after = Duration::ZERO;
    let eager = ProxmoxClient::new(config).unwrap();
    for _ in 0..3 {
        eager.version().await.unwrap();
    }
    assert_eq!(logins(&lab), 4, "an old ticket is renewed before use");
}

#[tokio::test]
async fn wrong_token_is_fatal_401() {
    let lab = start_lab(LabConfig::default()).await;
    let auth = Auth::token_from_str(&format!("{}=not-the-secret", lab.token_id)).unwrap();
    let c = client_with(&lab, auth, proxmox_common::pin(&lab));
    let err = c.nodes().await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("GET /nodes"), "{err}");
}
