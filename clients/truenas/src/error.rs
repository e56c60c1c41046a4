//! One error type for the TrueNAS client. Every message names the NAS (the
//! base endpoint as the inventory spells it) and, where there was one, the
//! API method, so a line read on its own says where it came from. No variant
//! ever holds the API key: requests are never copied into errors.

use std::fmt;
use std::time::Duration;

/// One attribute's complaint from a `-32602` answer (`data.extra` rows are
/// `[attribute, message, errno]`; the attribute is null when the error is
/// about the call as a whole, as for `get_instance` of a missing id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub attribute: Option<String>,
    pub message: String,
    pub errno: Option<i64>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attribute {
            Some(attribute) => write!(f, "{attribute}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// errno 2: what TrueNAS puts on "does not exist".
const ENOENT: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client was set up wrongly (endpoint, TLS); nothing was sent.
    #[error("TrueNAS client configuration: {0}")]
    Config(String),
    /// No conversation: TCP, TLS (a pin mismatch names both fingerprints
    /// here), the WebSocket handshake, or a socket that failed mid-call.
    #[error("TrueNAS {endpoint}: {step}: {detail}")]
    Transport {
        endpoint: String,
        step: String,
        detail: String,
    },
    /// No answer in time. A call that changes state may still take effect.
    #[error("TrueNAS {endpoint}: {method}: no answer within {after:?}{}", if *.mutating {
        " (the call changes state and may still take effect: plan again to see)"
    } else { "" })]
    Timeout {
        endpoint: String,
        method: String,
        after: Duration,
        mutating: bool,
    },
    /// The socket dropped after a state-changing call was sent. kiln does
    /// not resend it blindly: it may have been carried out.
    #[error(
        "TrueNAS {endpoint}: {method}: the connection dropped after the call was sent ({detail}); \
         it changes state, so kiln did not send it again: plan again to see whether it took effect"
    )]
    ReplyLost {
        endpoint: String,
        method: String,
        detail: String,
    },
    /// The API key was refused, expired or revoked.
    #[error("TrueNAS {endpoint}: login with the API key failed: {reason}")]
    Auth { endpoint: String, reason: String },
    /// `-32602`: the parameters (or the object they describe) are invalid.
    #[error("TrueNAS {endpoint}: {method}: invalid parameters: {}", list(errors))]
    Validation {
        endpoint: String,
        method: String,
        errors: Vec<FieldError>,
    },
    /// `-32001`: the method ran and raised a `CallError`.
    #[error("TrueNAS {endpoint}: {method}: {reason} ({errname})")]
    Call {
        endpoint: String,
        method: String,
        errno: Option<i64>,
        errname: String,
        reason: String,
    },
    /// `-32601`: this TrueNAS (API version) has no such method.
    #[error("TrueNAS {endpoint}: {method}: no such method in API {api_version}")]
    MethodNotFound {
        endpoint: String,
        method: String,
        api_version: String,
    },
    /// `-32000` still after the bounded backoff.
    #[error(
        "TrueNAS {endpoint}: {method}: the server kept answering \"too many calls in flight\" \
         (it allows 20 per connection) after {attempts} attempts"
    )]
    TooManyCalls {
        endpoint: String,
        method: String,
        attempts: usize,
    },
    /// Any other JSON-RPC error code.
    #[error("TrueNAS {endpoint}: {method}: JSON-RPC error {code}: {message}")]
    Rpc {
        endpoint: String,
        method: String,
        code: i64,
        message: String,
    },
    /// A job ended FAILED or ABORTED.
    #[error("TrueNAS {endpoint}: {method}: job {job_id} {state}: {error}")]
    JobFailed {
        endpoint: String,
        method: String,
        job_id: u64,
        state: String,
        error: String,
    },
    /// A job was still running when the wait gave up.
    #[error("TrueNAS {endpoint}: {method}: job {job_id} still {state} after {after:?}")]
    JobTimeout {
        endpoint: String,
        method: String,
        job_id: u64,
        state: String,
        after: Duration,
    },
    /// An answer that does not have the shape the schema promises.
    #[error("TrueNAS {endpoint}: {method}: unexpected answer: {reason}")]
    Decode {
        endpoint: String,
        method: String,
        reason: String,
    },
    /// What is on the NAS stops kiln from reaching the desired state without
    /// touching something it does not own (or deleting data).
    #[error("TrueNAS {endpoint}: {reason}")]
    Conflict { endpoint: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Worth retrying later as a whole (the engine's view): the NAS was
    /// unreachable, slow or busy. Validation and call errors are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Transport { .. }
                | Error::Timeout { .. }
                | Error::TooManyCalls { .. }
                | Error::ReplyLost { .. }
        )
    }

    /// "Does not exist": `get_instance` of a missing id (`-32602` with
    /// errno ENOENT) or a `CallError` with errname ENOENT.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Validation { errors, .. } => errors.iter().any(|e| e.errno == Some(ENOENT)),
            Error::Call { errno, errname, .. } => *errno == Some(ENOENT) || errname == "ENOENT",
            _ => false,
        }
    }

    /// The method the error came from, if it came from a call.
    pub fn method(&self) -> Option<&str> {
        match self {
            Error::Timeout { method, .. }
            | Error::ReplyLost { method, .. }
            | Error::Validation { method, .. }
            | Error::Call { method, .. }
            | Error::MethodNotFound { method, .. }
            | Error::TooManyCalls { method, .. }
            | Error::Rpc { method, .. }
            | Error::JobFailed { method, .. }
            | Error::JobTimeout { method, .. }
            | Error::Decode { method, .. } => Some(method),
            Error::Config(_)
            | Error::Transport { .. }
            | Error::Auth { .. }
            | Error::Conflict { .. } => None,
        }
    }
}

/// An error and all its sources on one line: a TLS refusal is several
/// layers deep (tungstenite → io → rustls → the pin verifier), and then
/// the verifier's own words are what the user needs.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut level = Some(error);
    // Bounded like the walk below.
    for _ in 0..16 {
        let Some(current) = level else { break };
        if let Some(refusal) = certificate_refusal(current) {
            return refusal;
        }
        level = current.source();
    }
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short, but a cyclic one must not hang us.
    for _ in 0..16 {
        let Some(next) = source else { break };
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        source = next.source();
    }
    text
}

/// rustls shows a certificate its verifier refused as
/// `invalid peer certificate: Other(OtherError(…))`; the verifier's message
/// (a pin mismatch names both fingerprints) reads better on its own.
fn certificate_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let tls = error.downcast_ref::<rustls::Error>().or_else(|| {
        error
            .downcast_ref::<std::io::Error>()?
            .get_ref()?
            .downcast_ref::<rustls::Error>()
    })?;
    match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => Some(format!(
            "TLS: the server's certificate was refused: {}",
            other.0
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_endpoint_method_and_each_attribute() {
        let error = Error::Validation {
            endpoint: "https://nas.lan".into(),
            method: "iscsi.target.create".into(),
            errors: vec![
                FieldError {
                    attribute: Some("iscsi_target_create.groups.0.portal".into()),
                    message: "1 Portal not found in database".into(),
                    errno: Some(22),
                },
                FieldError {
                    attribute: None,
                    message: "something about the call".into(),
                    errno: None,
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "TrueNAS https://nas.lan: iscsi.target.create: invalid parameters: \
             iscsi_target_create.groups.0.portal: 1 Portal not found in database; \
             something about the call"
        );
        assert!(!error.is_not_found());
        assert!(!error.is_transient());
    }

    #[test]
    fn timeouts_of_mutating_calls_say_they_may_have_happened() {
        let timeout = |mutating| Error::Timeout {
            endpoint: "https://nas.lan".into(),
            method: "pool.dataset.create".into(),
            after: Duration::from_secs(30),
            mutating,
        };
        assert!(timeout(true).to_string().contains("may still take effect"));
        assert!(!timeout(false).to_string().contains("may still"));
    }

    #[test]
    fn not_found_from_get_instance() {
        let error = Error::Validation {
            endpoint: "https://nas.lan".into(),
            method: "pool.dataset.get_instance".into(),
            errors: vec![FieldError {
                attribute: None,
                message: "tank/x does not exist".into(),
                errno: Some(2),
            }],
        };
        assert!(error.is_not_found());
    }
}
