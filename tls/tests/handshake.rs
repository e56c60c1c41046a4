//! Full TLS handshakes in memory (no sockets) against certificates made
//! with rcgen, to check each `Trust` the way a real server would test it.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns are test code too

use std::sync::Arc;

use kiln_tls::{Fingerprint, TlsError, Trust, provider};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

struct Server {
    cert: CertificateDer<'static>,
    pem: String,
    key: PrivateKeyDer<'static>,
}

fn self_signed(name: &str) -> Server {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Server {
        cert: cert.der().clone(),
        pem: cert.pem(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

fn server_config(server: &Server) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![server.cert.clone()], server.key.clone_key())
            .unwrap(),
    )
}

/// Drives both ends until the handshake completes or one side fails.
fn handshake(
    client: ClientConfig,
    server: Arc<ServerConfig>,
    dialled: &str,
) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(dialled.to_owned()).unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(server)?;
    for _ in 0..20 {
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut buf.as_slice()).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut buf.as_slice()).unwrap();
        c.process_new_packets()?;
    }
    panic!("handshake did not finish");
}

#[test]
fn pin_accepts_self_signed_cert_named_for_another_host() {
    let server = self_signed("pve1.lan");
    let pin = Fingerprint::of_der(&server.cert);
    let client = Trust::Pin(pin).client_config().unwrap();
    handshake(client, server_config(&server), "127.0.0.1").unwrap();
}

#[test]
fn wrong_pin_is_rejected_showing_both_fingerprints() {
    let server = self_signed("pve1.lan");
    let presented = Fingerprint::of_der(&server.cert);
    let wrong = Fingerprint::from_bytes([0xAB; 32]);
    let client = Trust::Pin(wrong).client_config().unwrap();
    let err = handshake(client, server_config(&server), "127.0.0.1").unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&wrong.to_string()), "{text}");
    assert!(text.contains(&presented.to_string()), "{text}");
}

/// Serves the pinned certificate but signs the handshake with another key,
/// as an attacker who copied the public certificate would.
#[derive(Debug)]
struct StolenCert(Arc<CertifiedKey>);

impl ResolvesServerCert for StolenCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[test]
fn pin_still_verifies_the_handshake_signature() {
    let genuine = self_signed("pve1.lan");
    let attacker = self_signed("pve1.lan");
    let signing_key = provider()
        .key_provider
        .load_private_key(attacker.key.clone_key())
        .unwrap();
    let stolen = CertifiedKey::new(vec![genuine.cert.clone()], signing_key);
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(StolenCert(Arc::new(stolen))));
    let client = Trust::Pin(Fingerprint::of_der(&genuine.cert))
        .client_config()
        .unwrap();
    let err = handshake(client, Arc::new(server), "127.0.0.1").unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{err:?}"
    );
}

#[test]
fn ca_file_trusts_leaf_signed_by_that_ca_and_checks_the_name() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["pve1.lan".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = Server {
        cert: leaf.der().clone(),
        pem: leaf.pem(),
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    };

    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let trust = Trust::CaFile(ca_path);

    handshake(
        trust.client_config().unwrap(),
        server_config(&server),
        "pve1.lan",
    )
    .unwrap();
    let err = handshake(
        trust.client_config().unwrap(),
        server_config(&server),
        "127.0.0.1",
    )
    .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn ca_file_does_not_trust_an_unrelated_self_signed_cert() {
    let other = self_signed("pve1.lan");
    let ca = self_signed("ca.lan");
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let client = Trust::CaFile(ca_path).client_config().unwrap();
    let err = handshake(client, server_config(&other), "pve1.lan").unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn ca_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = Trust::CaFile(missing.clone()).client_config().unwrap_err();
    assert!(matches!(err, TlsError::ReadCaFile { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.pem"));

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let err = Trust::CaFile(empty).client_config().unwrap_err();
    assert!(matches!(err, TlsError::EmptyCaFile { .. }), "{err:?}");
}
