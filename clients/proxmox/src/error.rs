//! One error type for the Proxmox client, classified the way the engine
//! acts on it: retry with backoff, pick a new VMID, or stop.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::upid::{InvalidUpid, Upid};

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: lock timeouts, worker fork failures, 5xx, dropped or
    /// timed-out connections. Retry with backoff.
    Retryable,
    /// The object already exists (a VMID taken by someone else).
    Conflict,
    /// Retrying will not help: bad parameters, permissions, missing objects.
    Fatal,
}

/// The API call an error came from, e.g. `POST /nodes/pve1/qemu/100/clone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Which node and VM an error concerns, where known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub node: Option<String>,
    pub vmid: Option<u32>,
}

impl Target {
    pub fn node(node: &str) -> Self {
        Self {
            node: Some(node.to_owned()),
            vmid: None,
        }
    }

    pub fn vm(node: &str, vmid: u32) -> Self {
        Self {
            node: Some(node.to_owned()),
            vmid: Some(vmid),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.node, self.vmid) {
            (Some(n), Some(v)) => write!(f, " [node {n}, VM {v}]"),
            (Some(n), None) => write!(f, " [node {n}]"),
            (None, Some(v)) => write!(f, " [VM {v}]"),
            (None, None) => Ok(()),
        }
    }
}

fn fmt_param_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(" ({})", parts.join("; "))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PVE answered with an HTTP error status.
    #[error(
        "{endpoint}{target}: HTTP {status}: {message}{}",
        fmt_param_errors(errors)
    )]
    Api {
        endpoint: Endpoint,
        target: Target,
        status: u16,
        /// The reason phrase, else the body's `message`, else the status text.
        message: String,
        /// PVE's per-parameter messages from `errors{}`.
        errors: BTreeMap<String, String>,
    },
    /// The request never got an HTTP answer (connect, TLS, reset).
    #[error("{endpoint}{target}: {detail}")]
    Transport {
        endpoint: Endpoint,
        target: Target,
        /// The whole source chain, so TLS pin mismatches show both prints.
        detail: String,
        /// Connection-level failures are worth retrying; TLS rejections are not.
        retryable: bool,
    },
    /// No answer within the per-request timeout.
    #[error("{endpoint}{target}: no answer within {after:?}")]
    Timeout {
        endpoint: Endpoint,
        target: Target,
        after: Duration,
    },
    /// A 2xx answer whose body is not what the schema promises.
    #[error("{endpoint}{target}: unexpected response: {reason}")]
    Decode {
        endpoint: Endpoint,
        target: Target,
        reason: String,
    },
    /// The guest agent reported an error inside a 200 answer.
    #[error("{endpoint}{target}: guest agent error {class}: {desc}")]
    Agent {
        endpoint: Endpoint,
        target: Target,
        class: String,
        desc: String,
    },
    /// A task ended with an exit status other than `OK` / `WARNINGS: N`.
    #[error("task {upid}{target} failed: {exitstatus}{}", fmt_log_tail(log_tail))]
    TaskFailed {
        upid: Box<Upid>,
        target: Target,
        exitstatus: String,
        log_tail: Vec<String>,
    },
    /// A task was still running when the wait gave up.
    #[error("task {upid}{target} still running after {after:?}")]
    TaskTimeout {
        upid: Box<Upid>,
        target: Target,
        after: Duration,
    },
    /// An overall wait (agent, lock, address) ran out of time.
    #[error("{what}{target}: gave up after {after:?}{}", last.as_ref().map(|l| format!(" (last: {l})")).unwrap_or_default())]
    WaitTimeout {
        what: &'static str,
        target: Target,
        after: Duration,
        last: Option<String>,
    },
    /// A UPID string that does not match PVE's format.
    #[error(transparent)]
    InvalidUpid(#[from] InvalidUpid),
    /// A value kiln was about to send breaks the API's format rules.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The client was configured wrongly (bad endpoint, TLS setup, header).
    #[error("Proxmox client configuration: {0}")]
    Config(String),
    /// No free VMID was found within the configured attempts.
    #[error("no free VMID after {attempts} attempts starting at {start}")]
    VmidExhausted { start: u32, attempts: u32 },
}

fn fmt_log_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n  task log (last lines):\n    {}", lines.join("\n    "))
    }
}

/// Messages that mean "someone else holds the lock or the server is busy".
const RETRYABLE_TEXT: &[&str] = &[
    "can't lock file",
    "got timeout",
    "got no worker upid",
    "is locked (",
    "connection reset",
    "connection refused",
];

/// 5xx messages that will not change on retry.
const FATAL_5XX_TEXT: &[&str] = &[
    "does not exist",
    "already running",
    "not running",
    "is running - destroy failed",
    "no such",
    "permission check failed",
    "not implemented",
    "unable to parse",
    "is a template",
    "it's a template",
    "you can't",
    "not allowed",
    "no qemu guest agent configured",
    "guest agent is not running",
    "use local storage",
    "uses local storage",
    "non-shared storage",
];

/// Classifies PVE's text plus HTTP status, the way architecture.md asks.
pub fn classify(status: Option<u16>, text: &str) -> ErrorClass {
    let lower = text.to_ascii_lowercase();
    if lower.contains("already exists") {
        return ErrorClass::Conflict;
    }
    if RETRYABLE_TEXT.iter().any(|t| lower.contains(t)) {
        return ErrorClass::Retryable;
    }
    match status {
        Some(s) if s >= 500 => {
            if FATAL_5XX_TEXT.iter().any(|t| lower.contains(t)) || s == 501 {
                ErrorClass::Fatal
            } else {
                ErrorClass::Retryable
            }
        }
        // 408 Request Timeout and 429 Too Many Requests are load, not faults.
        Some(408 | 429) => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    }
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api {
                status,
                message,
                errors,
                ..
            } => {
                let mut text = message.clone();
                for v in errors.values() {
                    text.push(' ');
                    text.push_str(v);
                }
                classify(Some(*status), &text)
            }
            Error::Transport { retryable, .. } => {
                if *retryable {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Fatal
                }
            }
            Error::Timeout { .. } => ErrorClass::Retryable,
            Error::TaskFailed { exitstatus, .. } => match classify(None, exitstatus) {
                // A task that failed on a lock can be dispatched again.
                ErrorClass::Retryable => ErrorClass::Retryable,
                ErrorClass::Conflict => ErrorClass::Conflict,
                ErrorClass::Fatal => ErrorClass::Fatal,
            },
            Error::Decode { .. }
            | Error::Agent { .. }
            | Error::TaskTimeout { .. }
            | Error::WaitTimeout { .. }
            | Error::InvalidUpid(_)
            | Error::Config(_)
            | Error::Invalid(_)
            | Error::VmidExhausted { .. } => ErrorClass::Fatal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// PVE's message text (API errors and failed tasks), without context.
    pub fn pve_message(&self) -> Option<&str> {
        match self {
            Error::Api { message, .. } => Some(message),
            Error::TaskFailed { exitstatus, .. } => Some(exitstatus),
            _ => None,
        }
    }

    /// True for PVE's "not found" answers, which come as 500 + "does not exist".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Api {
                status, message, ..
            } => *status == 404 || message.contains("does not exist"),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> Error {
        Error::Api {
            endpoint: Endpoint {
                method: "POST",
                path: "/nodes/pve1/qemu/100/clone".into(),
            },
            target: Target::vm("pve1", 100),
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn classifies_pve_messages() {
        let cases = [
            (
                500,
                "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
                ErrorClass::Retryable,
            ),
            (
                500,
                "got no worker upid - start worker failed",
                ErrorClass::Retryable,
            ),
            (500, "VM is locked (clone)", ErrorClass::Retryable),
            (503, "Service Unavailable", ErrorClass::Retryable),
            (596, "Connection timed out", ErrorClass::Retryable),
            (
                500,
                "unable to create VM 107: config file already exists",
                ErrorClass::Conflict,
            ),
            (
                500,
                "Configuration file 'nodes/pve/qemu-server/117.conf' does not exist",
                ErrorClass::Fatal,
            ),
            (500, "QEMU guest agent is not running", ErrorClass::Fatal),
            (400, "Parameter verification failed.", ErrorClass::Fatal),
            (401, "authentication failure", ErrorClass::Fatal),
            (
                403,
                "Permission check failed (/vms/100, VM.Allocate)",
                ErrorClass::Fatal,
            ),
            (501, "Method 'GET /foo' not implemented", ErrorClass::Fatal),
            (
                500,
                "you can't start a vm if it's a template",
                ErrorClass::Fatal,
            ),
        ];
        for (status, msg, want) in cases {
            assert_eq!(api(status, msg).class(), want, "{status} {msg}");
        }
    }

    #[test]
    fn param_errors_take_part_in_classification_and_display() {
        let mut e = api(400, "Parameter verification failed.");
        if let Error::Api { errors, .. } = &mut e {
            errors.insert("vmid".into(), "VM 200 already exists".into());
        }
        assert_eq!(e.class(), ErrorClass::Conflict);
        let text = e.to_string();
        assert!(text.contains("POST /nodes/pve1/qemu/100/clone"), "{text}");
        assert!(text.contains("[node pve1, VM 100]"), "{text}");
        assert!(text.contains("vmid: VM 200 already exists"), "{text}");
    }

    #[test]
    fn task_failures_classified_by_exit_status() {
        let upid: Upid = "UPID:pve1:000FF1FD:10F9374C:630D702C:qmclone:100:root@pam:"
            .parse()
            .unwrap();
        let failed = |exit: &str| Error::TaskFailed {
            upid: Box::new(upid.clone()),
            target: Target::default(),
            exitstatus: exit.into(),
            log_tail: vec!["line one".into()],
        };
        assert!(
            failed("clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout")
                .is_retryable()
        );
        assert_eq!(failed("VM 100 already running").class(), ErrorClass::Fatal);
        assert!(failed("boom").to_string().contains("line one"));
    }
}
