//! Vault failures. Messages carry the address, the method and the API path
//! and Vault's own error strings, which never contain the token.

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("Vault at {address}: {method} {path} answered {status}: {errors}")]
    Status {
        address: String,
        method: String,
        path: String,
        status: u16,
        errors: String,
    },

    #[error("cannot reach Vault at {address} ({method} {path}): {source}")]
    Transport {
        address: String,
        method: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("Vault at {address}: unexpected answer to {method} {path}: {reason}")]
    Answer {
        address: String,
        method: String,
        path: String,
        reason: String,
    },

    #[error("Vault login with {method} at {address} failed: {reason}")]
    Login {
        method: &'static str,
        address: String,
        reason: String,
    },

    #[error("Vault TLS settings: {0}")]
    Tls(#[from] kiln_tls::TlsError),

    #[error("Vault settings: {0}")]
    Config(String),
}

impl VaultError {
    /// The HTTP status Vault answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Vault's error strings, when it sent some.
    pub fn errors(&self) -> &str {
        match self {
            Self::Status { errors, .. } => errors,
            _ => "",
        }
    }
}
