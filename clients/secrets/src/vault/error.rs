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

    /// `reason` is the whole cause chain as text: reqwest's own Display
    /// stops at "error sending request", which hides a TLS refusal.
    #[error("cannot reach Vault at {address} ({method} {path}): {reason}")]
    Transport {
        address: String,
        method: String,
        path: String,
        reason: String,
        /// TLS refused the server (wrong pin, unknown CA): trying again
        /// cannot help.
        tls_refused: bool,
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

/// An error and its sources, joined the way `{:#}` shows an anyhow chain.
pub(crate) fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest repeat their inner message; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether rustls refused the connection somewhere in this chain. rustls
/// errors travel inside (nested) `io::Error`s, whose `source()` skips the
/// error they wrap, so the walk steps into each io::Error's inner error.
pub(crate) fn is_tls_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        cause = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
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
