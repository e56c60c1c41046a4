//! The lab's real storage data path: a user-space iSCSI target (tgt: `tgtd` + `tgtadm`) and a
//! user-space NFS server (nfs-ganesha with FSAL_VFS), each run inside a network namespace the
//! lab made, so that the guests' own kernels (open-iscsi, NFS mounts) attach to real servers.
//! This host's kernel has no iSCSI, NFS or LIO at all, which is why both servers are the
//! user-space ones; clients on the host itself are libiscsi and libnfs.
//!
//! Nothing here knows TrueNAS's API: an emulator maps its targets, extents, initiator groups,
//! CHAP entries and NFS shares onto these typed operations. The calls block for milliseconds
//! (they run `tgtadm`, or rewrite ganesha's config and wait for its SIGHUP reload), which
//! suits a synchronous caller holding its state lock.
//!
//! ```no_run
//! use kiln_lab_core::storage::{
//!     ChapSpec, Export, GaneshaOptions, GaneshaServer, Initiator, Lun, PoolMount, Squash,
//!     TargetSpec, TgtServer,
//! };
//! # fn main() -> Result<(), kiln_lab_core::storage::StorageError> {
//! // In a namespace that holds 10.77.0.1 (the lab's gateway bridge).
//! let tgt = TgtServer::start(
//!     "kiln-lab-default",
//!     "10.77.0.1:3260".parse().expect("portal"),
//!     "/var/lib/lab/tgt/tgtd.log".as_ref(),
//! )?;
//! tgt.apply(&[TargetSpec {
//!     iqn: "iqn.2005-10.org.freenas.ctl:pvc-1".to_string(),
//!     luns: vec![Lun::truenas(1, "/var/lib/lab/tank/k8s/pvc-1.zvol")],
//!     allowed: vec![Initiator::Address("10.77.0.0/24".to_string())],
//!     chap: Some(ChapSpec {
//!         user: "k8s".to_string(),
//!         secret: "from-the-api-state".to_string(),
//!         mutual: None,
//!     }),
//! }])?;
//!
//! let nfs = GaneshaServer::start(GaneshaOptions {
//!     namespace: "kiln-lab-default".to_string(),
//!     listen: "10.77.0.1".parse().expect("address"),
//!     state_dir: "/var/lib/lab/ganesha".into(),
//!     pools: vec![PoolMount {
//!         source: "/var/lib/lab/tank".into(),
//!         served: "/mnt/tank".into(),
//!     }],
//!     nfs_v3: false,
//! })?;
//! nfs.set_exports(vec![Export::truenas(
//!     1,
//!     "/mnt/tank/k8s/nfs/pvc-2",
//!     vec!["10.77.0.0/24".to_string()],
//!     Squash::NoRootSquash,
//! )])?;
//!
//! nfs.shutdown();
//! tgt.shutdown()?;
//! # Ok(())
//! # }
//! ```

mod daemon;
pub mod ganesha;
mod ganesha_config;
mod leftovers;
pub mod tgt;
mod tgt_apply;
mod tgt_control;
mod tgt_show;

use std::path::PathBuf;
use std::time::Duration;

pub use ganesha::{GaneshaOptions, GaneshaServer, PoolMount};
pub use ganesha_config::{Export, ExportAccess, Squash};
pub use leftovers::stop_leftovers;
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
