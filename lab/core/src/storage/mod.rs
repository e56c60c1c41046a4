//! The lab's real storage data path: a user-space iSCSI target (tgt: `tgtd` + `tgtadm`) and a
//! user-space NFS server (nfs-ganesha with FSAL_VFS), each run inside a network namespace the
//! lab made, so that the guests' own kernels (open-iscsi, NFS mounts) attach to real servers.
//! This host's kernel has no iSCSI, NFS or LIO at all, which is why both servers are the
//! user-space ones; clients on the host itself are libiscsi and libnfs.
//!
//! Nothing here knows TrueNAS's API: an emulator maps its targets, extents, initiator groups,
//! CHAP entries and NFS shares onto these typed operations.

mod daemon;
pub mod ganesha;
mod ganesha_config;
pub mod tgt;
mod tgt_apply;
mod tgt_control;
mod tgt_show;

use std::path::PathBuf;
use std::time::Duration;

pub use ganesha::{GaneshaOptions, GaneshaServer, PoolMount};
pub use ganesha_config::{Export, ExportAccess, Squash};
pub use tgt::{ChapDirection, Initiator, Lun, TgtServer};
pub use tgt_apply::{ChapCredential, ChapSpec, TargetSpec};
pub use tgt_show::{BoundAccount, LunState, TargetState};

/// Why a storage server could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `tgtadm` refused or failed; `stderr` is its own message.
    #[error("tgtadm {operation} on {target}: {stderr}")]
    Tgtadm {
        operation: &'static str,
        target: String,
        stderr: String,
    },
    #[error("cannot run {program}: {message}")]
    Spawn {
        program: &'static str,
        message: String,
    },
    /// The server did not come up; `log` is the end of its log.
    #[error("{server} in namespace '{namespace}' did not start within {waited:?}: {log}")]
    NotReady {
        server: &'static str,
        namespace: String,
        waited: Duration,
        log: String,
    },
    #[error("{operation} did not finish within {waited:?}")]
    Timeout { operation: String, waited: Duration },
    #[error("{0}")]
    Invalid(String),
    #[error("no target {0}")]
    UnknownTarget(String),
    #[error("no export with id {0}")]
    UnknownExport(u16),
    #[error("export reload failed: {0}")]
    Reload(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl StorageError {
    fn file(path: &std::path::Path, error: impl std::fmt::Display) -> Self {
        StorageError::File {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}
