//! What can go wrong talking SSH to a host. Every message starts with the
//! target (`user@host:port (node NAME)`) and names the step; none quotes key
//! material or command output that could hold secrets beyond stderr's tail.

use std::time::Duration;

use crate::command::ExitStatus;
use crate::host_keys::HostKeyError;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{at}: connect: {source}")]
    Connect {
        at: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: SSH handshake: {source}")]
    Handshake {
        at: String,
        #[source]
        source: Box<russh::Error>,
    },
    #[error("{at}: host key: {source}")]
    HostKey {
        at: String,
        #[source]
        source: Box<HostKeyError>,
    },
    #[error("{at}: {what}: {reason}")]
    Key {
        at: String,
        what: String,
        reason: String,
    },
    #[error("{at}: auth: the server refused {tried} (it accepts: {accepts})")]
    AuthRejected {
        at: String,
        tried: String,
        accepts: String,
    },
    #[error("{at}: {step}: no answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        at: String,
        step: String,
        timeout: Duration,
    },
    #[error("{at}: {step}: {source}")]
    Protocol {
        at: String,
        step: String,
        #[source]
        source: Box<russh::Error>,
    },
    #[error("{at}: {step}: {source}")]
    Sftp {
        at: String,
        step: String,
        #[source]
        source: Box<russh_sftp::client::error::Error>,
    },
    #[error("{at}: {step}: {source}")]
    Io {
        at: String,
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: {step}: the server refused to run it")]
    Refused { at: String, step: String },
    #[error("{at}: {step}: the channel closed without an exit status")]
    NoExitStatus { at: String, step: String },
    #[error("{at}: {step}: the output exceeds {limit} bytes; stream it instead")]
    OutputTooLarge {
        at: String,
        step: String,
        limit: usize,
    },
    #[error("{at}: {step}: {status}{}", stderr_suffix(.stderr))]
    Failed {
        at: String,
        step: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "{at}: upload {path}: the remote copy has sha256 {remote}, the local data {local}; \
         the target was left as it was"
    )]
    ChecksumMismatch {
        at: String,
        path: String,
        local: String,
        remote: String,
    },
    #[error("{at}: {step}: an argument holds a NUL byte, which no shell can pass")]
    Unquotable { at: String, step: String },
    #[error("{at}: upload {path}: {reason}")]
    BadRemotePath {
        at: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "{at}: wait for SSH: gave up after {} and {attempts} attempts; last error: {last}",
        humantime::format_duration(*.waited)
    )]
    WaitTimedOut {
        at: String,
        waited: Duration,
        attempts: u32,
        last: Box<SshError>,
    },
}

impl SshError {
    /// Whether trying again later can help: the host may still be booting
    /// (refused, timed out, closed, keys not installed yet). A host key that
    /// does not verify, or a key kiln cannot load, never gets better.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Handshake { .. }
            | Self::Timeout { .. }
            | Self::AuthRejected { .. }
            | Self::Protocol { .. } => true,
            Self::HostKey { .. }
            | Self::Key { .. }
            | Self::Sftp { .. }
            | Self::Io { .. }
            | Self::Refused { .. }
            | Self::NoExitStatus { .. }
            | Self::OutputTooLarge { .. }
            | Self::Failed { .. }
            | Self::ChecksumMismatch { .. }
            | Self::Unquotable { .. }
            | Self::BadRemotePath { .. }
            | Self::WaitTimedOut { .. } => false,
        }
    }
}

/// The last lines of stderr, enough to say why a command failed.
fn stderr_suffix(stderr: &str) -> String {
    const KEEP: usize = 2000;
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    let tail = match trimmed.char_indices().rev().nth(KEEP) {
        Some((cut, _)) => format!("…{}", &trimmed[cut..]),
        None => trimmed.to_owned(),
    };
    format!("; stderr: {tail}")
}
