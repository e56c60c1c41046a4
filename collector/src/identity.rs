//! The collector's TLS identity: the cluster's own self-signed certificate,
//! kept in the secrets store (made on first use, so the fingerprint agents
//! pin survives a rebuild of the machine kiln runs on; see
//! `secrets::generated::collector_tls`), or the user's certificate and key.

use std::path::Path;
use std::sync::Arc;

use kiln_tls::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

use crate::error::CollectorError;

/// A certificate chain, its key, and the leaf's fingerprint.
pub struct CollectorIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
    /// Where it came from, for messages: a file, or the secrets store entry.
    pub source: String,
}

impl CollectorIdentity {
    /// An identity from PEM text (leaf first) and its key; `source` names
    /// where both came from in errors.
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &SecretString,
        source: impl Into<String>,
    ) -> Result<Self, CollectorError> {
        let source = source.into();
        let key_source = source.clone();
        Self::parse(cert_pem, source, &key_source, || Ok(key_pem.clone()))
    }

    /// The user's own certificate (PEM, leaf first) and key (PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CollectorError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|error| {
                CollectorError::Certificate(format!("{}: {error}", path.display()))
            })
        };
        let cert_pem = read(cert_path)?;
        let key_source = key_path.display().to_string();
        Self::parse(
            &cert_pem,
            cert_path.display().to_string(),
            &key_source,
            || read(key_path).map(SecretString::from),
        )
    }

    /// The key is read only once the certificate proved usable, so an error
    /// names the first thing wrong.
    fn parse(
        cert_pem: &str,
        source: String,
        key_source: &str,
        key_pem: impl FnOnce() -> Result<SecretString, CollectorError>,
    ) -> Result<Self, CollectorError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| CollectorError::Certificate(format!("{source}: {error}")))?;
        let fingerprint = chain
            .first()
            .map(|leaf| Fingerprint::of_der(leaf))
            .ok_or_else(|| {
                CollectorError::Certificate(format!("{source}: no certificate in it"))
            })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem()?.expose_secret().as_bytes()).map_err(
            |error| {
                CollectorError::Certificate(format!("{key_source}: no usable private key: {error}"))
            },
        )?;
        Ok(Self {
            chain,
            key,
            fingerprint,
            source,
        })
    }

    /// A rustls server config (ring, HTTP/1.1) presenting this identity.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CollectorError> {
        let failed =
            |error: rustls::Error| CollectorError::Certificate(format!("{}: {error}", self.source));
        let mut config = rustls::ServerConfig::builder_with_provider(kiln_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(failed)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(failed)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl std::fmt::Debug for CollectorIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CollectorIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_secrets::generated::new_collector_tls;

    #[test]
    fn the_stored_certificate_serves_with_its_fingerprint() {
        let tls = new_collector_tls("home", &["127.0.0.1".to_owned()]).unwrap();
        let identity = CollectorIdentity::from_pem(&tls.cert_pem, &tls.key_pem, "store").unwrap();
        assert_eq!(identity.fingerprint, tls.fingerprint);
        identity.server_config().unwrap();
    }

    #[test]
    fn a_text_without_a_certificate_or_key_is_named() {
        let tls = new_collector_tls("home", &["127.0.0.1".to_owned()]).unwrap();
        let error = CollectorIdentity::from_pem("not pem", &tls.key_pem, "the store entry")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the store entry") && error.contains("no certificate"),
            "{error}"
        );
        let error = CollectorIdentity::from_pem(&tls.cert_pem, &SecretString::from("x"), "entry")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no usable private key"), "{error}");
        assert!(!error.contains(tls.key_pem.expose_secret()), "{error}");
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let error = CollectorIdentity::load(&cert, &dir.path().join("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("c.pem"), "{error}");
    }
}
