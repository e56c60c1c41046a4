use std::path::PathBuf;

use crate::FingerprintError;

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    #[error("cannot read CA file {path}: {source}")]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {path} is not valid PEM: {reason}")]
    BadCaFile { path: PathBuf, reason: String },
    #[error("CA file {path} holds no usable certificate")]
    EmptyCaFile { path: PathBuf },
    #[error("no usable system root certificate found ({reason})")]
    NoSystemRoots { reason: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}
