//! TLS trust for every kiln client: Proxmox VE, TrueNAS, Talos and the
//! agent→collector link.
//!
//! A [`Trust`] says how a server certificate is accepted (system roots, a CA
//! file, or a SHA-256 fingerprint pin) and builds a [`rustls::ClientConfig`]
//! on the ring provider. ring is the only crypto backend in kiln, so the
//! configs built here never rely on a process-wide default provider.

mod error;
mod fingerprint;
mod trust;
mod verifier;

pub use error::TlsError;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use trust::Trust;
pub use verifier::{PinMismatch, PinVerifier};

use std::sync::Arc;

/// The crypto provider every kiln TLS config uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
