//! What can go wrong in the collector. Every message names the file, the
//! node or the address it is about; none carries a token.

use std::path::{Path, PathBuf};

use kiln_secrets::SecretsError;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Dirs(#[from] SecretsError),

    /// The I/O error is part of the message, not a `source`: printed as a
    /// chain it would say the same thing twice.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        action: &'static str,
        path: PathBuf,
        reason: std::io::Error,
    },

    #[error("collector database {path}: {reason}")]
    Sqlite {
        path: PathBuf,
        reason: rusqlite::Error,
    },

    #[error(
        "{path} was written by a newer kiln (collector schema {found}, this kiln knows up \
         to {known}); use that kiln or a newer one"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("collector database {path}: the writer thread {reason}")]
    WriterGone { path: PathBuf, reason: &'static str },

    #[error("collector database {path}: cannot store a report: {reason}")]
    WriteFailed { path: PathBuf, reason: String },

    #[error("collector database {path}: a stored report does not parse: {reason}")]
    BadStoredReport { path: PathBuf, reason: String },

    #[error("collector certificate: {0}")]
    Certificate(String),

    #[error("cannot listen on {address}: {reason}")]
    Listen {
        address: String,
        reason: std::io::Error,
    },

    #[error("the system random number generator failed while making {what}")]
    Random { what: &'static str },

    #[error("collector {url}: {reason}")]
    Client { url: String, reason: String },
}

impl CollectorError {
    pub(crate) fn io(action: &'static str, path: &Path, reason: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            reason,
        }
    }

    pub(crate) fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> Self + '_ {
        move |reason| Self::Sqlite {
            path: path.to_owned(),
            reason,
        }
    }
}
