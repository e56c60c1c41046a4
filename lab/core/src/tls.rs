//! A lab's self-signed server certificate, made at start (rcgen + rustls, ring only), and
//! its fingerprint as clients pin it.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

use crate::error::LabError;

/// A server certificate and the rustls configuration that serves it.
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the DER certificate, `AB:CD:...` (the form PVE shows and kiln pins).
    pub fingerprint: String,
    pub cert_pem: String,
}

/// Upper-case, colon-separated SHA-256 of a DER certificate.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ServerTls {
    /// A certificate named `common_name`, valid for the loopback names plus `extra` (a qemu
    /// lab's namespace address), offering the ALPN protocols `alpn` (an emulator speaking
    /// gRPC needs `h2`; one whose messages travel in HTTP/1.1 reason phrases must not offer
    /// it).
    pub fn self_signed(
        common_name: &str,
        extra: &[IpAddr],
        alpn: &[&[u8]],
    ) -> Result<Self, LabError> {
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
            .push(rcgen::DnType::CommonName, common_name);
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
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            cert_pem: cert.pem(),
        })
    }

    /// The acceptor that wraps accepted connections in this certificate's TLS.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}
