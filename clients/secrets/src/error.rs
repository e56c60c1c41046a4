//! What can go wrong with secrets. Messages name the reference and where
//! the inventory uses it, the file or Vault path involved, and what to do;
//! they never carry a secret value.

use std::path::{Path, PathBuf};

use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A reference in the inventory could not be turned into a value.
    #[error("secret `{reference}` (used at `{used_at}`) cannot be resolved: {reason}")]
    Unresolved {
        reference: String,
        used_at: String,
        reason: String,
    },

    #[error(
        "the file store {store} exists but its age identity {identity} is missing; \
         restore the identity (kiln never starts an empty store over an existing one)"
    )]
    IdentityMissing { identity: PathBuf, store: PathBuf },

    #[error(
        "the age identity {identity} cannot decrypt the file store {store}: \
         it is not the identity the store was written for"
    )]
    WrongIdentity { identity: PathBuf, store: PathBuf },

    #[error("{path} is not a valid age identity file: {reason}")]
    BadIdentity { path: PathBuf, reason: String },

    #[error(
        "{what} {path} has mode {mode:04o}, so other users may read it; \
         run `chmod 600 {path}` and check who else could have copied it"
    )]
    NotPrivate {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },

    #[error("the file store {path} is damaged: {reason}")]
    CorruptStore { path: PathBuf, reason: String },

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot find kiln's directories: set ${variable} (or $HOME)")]
    NoHome { variable: String },

    #[error(
        "`{name}` in {location} changed since it was read (check-and-set: {reason}); \
         another kiln run may be writing it, retry"
    )]
    CasConflict {
        name: String,
        location: String,
        reason: String,
    },

    #[error("cannot generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },

    #[error("the stored {what} at `{name}` is not usable: {reason}")]
    BadStoredValue {
        what: &'static str,
        name: String,
        reason: String,
    },

    #[error("{0}")]
    Config(String),

    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl SecretsError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
