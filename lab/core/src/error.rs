//! Errors of starting and running a lab, whichever system it emulates.

use std::path::PathBuf;

/// Why a lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the lab listens on loopback only; {0} is not a loopback address")]
    NotLoopback(std::net::SocketAddr),
    #[error("cannot make the lab's TLS certificate: {0}")]
    Certificate(String),
    #[error("cannot read the faults file {path}: {source}")]
    FaultsRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid faults file {path}: {message}")]
    FaultsParse { path: PathBuf, message: String },
    #[error("cannot open the request log {path}: {source}")]
    RequestLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the embedded API schema cannot be read: {0}")]
    Schema(String),
    #[error("the qemu backend needs `LabConfig::qemu` (data directory and network namespace)")]
    QemuOptionsMissing,
    #[error(
        "the qemu backend runs inside its network namespace '{0}', and this process is not in it"
    )]
    NotInNamespace(String),
    #[error("qemu backend: {0}")]
    Qemu(String),
    #[error("network namespace: {0}")]
    Namespace(String),
    #[error("lab record: {0}")]
    Record(String),
    #[error("invalid lab configuration: {0}")]
    Config(String),
}
