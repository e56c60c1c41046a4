//! What can go wrong with the journal. Every message names the journal file,
//! so a damaged or foreign file can be found and moved aside.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;
use uuid::Uuid;

use kiln_secrets::SecretsError;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot find the journal: {0}")]
    Dirs(#[from] SecretsError),

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path} is not a kiln journal or is damaged ({reason}); \
         move it aside and kiln starts a new one"
    )]
    NotAJournal { path: PathBuf, reason: String },

    #[error(
        "{path} was written by a newer kiln (journal schema {found}, this kiln knows up \
         to {known}); use that kiln or a newer one"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("journal {path}: an event for run {run}, which the journal has no start of")]
    UnknownRun { path: PathBuf, run: Uuid },

    #[error("{count} event(s) could not be written to the journal; the first: {first}")]
    NotRecorded {
        count: usize,
        first: Box<JournalError>,
    },

    #[error("the journal's writer thread is gone ({reason}); events since are not recorded")]
    WriterGone { reason: String },

    #[error("`{given}` is not a run id: use the hex digits `kiln runs` prints (dashes optional)")]
    BadRunId { given: String },

    #[error("no run in {path} has an id starting with `{prefix}`; `kiln runs` lists them")]
    NoSuchRun { path: PathBuf, prefix: String },

    #[error(
        "`{prefix}` is ambiguous: {count} runs have ids starting with it ({}{}); \
         give more characters",
        candidates.join(", "),
        if *count > candidates.len() { ", …" } else { "" }
    )]
    AmbiguousRunId {
        prefix: String,
        /// How many runs share the prefix.
        count: usize,
        /// The first few of them.
        candidates: Vec<String>,
    },
}

impl JournalError {
    /// Tells a file that is not (or no longer) an SQLite database apart from
    /// an ordinary failure, so the message says what to do about it.
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Self::NotAJournal {
                path: path.to_owned(),
                reason: source.to_string(),
            },
            _ => Self::Sqlite {
                path: path.to_owned(),
                source,
            },
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
