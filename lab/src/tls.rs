//! The lab's self-signed server certificate, made at start (rcgen + rustls, ring only).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::error::LabError;

pub(crate) struct ServerTls {
    pub(crate) config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the DER certificate, `AB:CD:...` as PVE shows it.
    pub(crate) fingerprint: String,
    pub(crate) cert_pem: String,
}

/// Upper-case, colon-separated SHA-256 of a DER certificate.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate for loopback names plus `extra` (the qemu lab's namespace address).
pub(crate) fn make_server_tls(extra: &[std::net::IpAddr]) -> Result<ServerTls, LabError> {
    let cert_err = |e: rcgen::Error| LabError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(cert_err)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for ip in extra.iter().map(ToString::to_string) {
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(cert_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kiln-lab");
    let cert = params.self_signed(&key).map_err(cert_err)?;
    let der: CertificateDer<'static> = cert.der().clone();
    let fingerprint = fingerprint_of(&der);
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LabError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .map_err(|e| LabError::Certificate(e.to_string()))?;
    // HTTP/1.1 only: PVE's messages travel in the reason phrase, which HTTP/2 does not have.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
        cert_pem: cert.pem(),
    })
}
