use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::{Fingerprint, PinVerifier, TlsError, provider};

/// How a client decides to trust a server certificate. There is no
/// "accept anything" variant on purpose: a self-signed server needs a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's root store (honours `SSL_CERT_FILE`).
    System,
    /// Only the CAs in this PEM file.
    CaFile(PathBuf),
    /// Exactly the end-entity certificate with this SHA-256 fingerprint,
    /// whatever name it carries.
    Pin(Fingerprint),
}

impl Trust {
    /// A rustls client config on the ring provider. ALPN is left empty, so
    /// callers that need `h2` or must force `http/1.1` set it themselves.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let config = match self {
            Trust::System => builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
            Trust::CaFile(path) => builder
                .with_root_certificates(ca_file_roots(path)?)
                .with_no_client_auth(),
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinVerifier::new(*pin)))
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let reason = if loaded.errors.is_empty() {
            "the system store is empty".to_owned()
        } else {
            loaded
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(TlsError::NoSystemRoots { reason });
    }
    Ok(roots)
}

fn ca_file_roots(path: &PathBuf) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
        path: path.clone(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCaFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::EmptyCaFile { path: path.clone() });
    }
    Ok(roots)
}
