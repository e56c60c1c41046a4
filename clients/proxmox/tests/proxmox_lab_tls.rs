//! TLS trust against kiln-lab's self-signed certificate: the pin is
//! accepted, a wrong pin and an unpinned self-signed server are rejected.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod proxmox_common;

use kiln_lab::LabConfig;
use kiln_proxmox::{Auth, ClientConfig, Error, ErrorClass, ProxmoxClient};
use kiln_tls::{Fingerprint, Trust};
use proxmox_common::{client_with, pin, start_lab};

fn token(lab: &kiln_lab::RunningLab) -> Auth {
    Auth::token_from_str(&lab.token()).unwrap()
}

#[tokio::test]
async fn pinned_fingerprint_is_accepted() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client_with(&lab, token(&lab), pin(&lab));
    let v = c.version().await.unwrap();
    assert!(!v.version.is_empty());
}

#[tokio::test]
async fn lowercase_plain_hex_pin_is_the_same_pin() {
    let lab = start_lab(LabConfig::default()).await;
    let plain = lab.fingerprint.replace(':', "").to_lowercase();
    let c = client_with(&lab, token(&lab), Trust::Pin(plain.parse().unwrap()));
    c.nodes().await.unwrap();
}

#[tokio::test]
async fn wrong_pin_is_rejected_showing_both_fingerprints() {
    let lab = start_lab(LabConfig::default()).await;
    let wrong = Fingerprint::from_bytes([0x5A; 32]);
    let c = client_with(&lab, token(&lab), Trust::Pin(wrong));
    let err = c.version().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        err.class(),
        ErrorClass::Fatal,
        "a pin mismatch must not be retried"
    );
    assert!(
        text.contains(&wrong.to_string()),
        "expected pin missing: {text}"
    );
    assert!(
        text.contains(&lab.fingerprint),
        "presented pin missing: {text}"
    );
    assert!(text.contains("GET /version"), "{text}");
    // Nothing reached the API: the handshake failed first.
    assert!(lab.requests().is_empty());
}

#[tokio::test]
async fn no_pin_and_self_signed_is_rejected() {
    let lab = start_lab(LabConfig::default()).await;
    // System roots: the lab's self-signed certificate chains to none of them.
    // (A machine without any system roots already fails to build the client.)
    match ProxmoxClient::new(ClientConfig::new(
        lab.endpoint.clone(),
        token(&lab),
        Trust::System,
    )) {
        Err(Error::Config(msg)) => assert!(msg.contains("TLS"), "{msg}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(c) => {
            let err = c.version().await.unwrap_err();
            assert!(matches!(err, Error::Transport { .. }), "{err:?}");
            assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
            assert!(err.to_string().contains("fingerprint pinned"), "{err}");
        }
    }
    assert!(lab.requests().is_empty());
}

#[tokio::test]
async fn ca_file_of_another_ca_is_rejected() {
    let lab = start_lab(LabConfig::default()).await;
    let other = start_lab(LabConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other.pem");
    std::fs::write(&ca, &other.cert_pem).unwrap();
    let c = client_with(&lab, token(&lab), Trust::CaFile(ca));
    let err = c.version().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
}
