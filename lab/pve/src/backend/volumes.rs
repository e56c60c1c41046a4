//! The files behind volumes. PVE's view of a volume (volid, size, parent) lives in
//! `crate::pve::state`; a volume store makes, copies, grows and removes the file behind it.
//! The sim store keeps no files; the qemu store (`crate::qemu::FileVolumes`) keeps qcow2 files.

use std::path::{Path, PathBuf};

use super::BoxFuture;

/// One change to a volume's file, run inside the PVE task that asked for it.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeOp {
    /// A new empty disk of `size` bytes.
    Create { volid: String, size: u64 },
    /// A disk made from a storage file (`import-from=local:import/x.qcow2`).
    Import { source: String, volid: String },
    /// A copy-on-write overlay on a template's base disk (linked clone).
    LinkedClone { base: String, volid: String },
    /// An independent copy (full clone).
    FullClone { source: String, volid: String },
    /// Grows a disk to `size` bytes.
    Resize { volid: String, size: u64 },
    /// A volume renamed (`vm-N-disk-K` → `base-N-disk-K` when a VM becomes a template).
    Rename { from: String, to: String },
    /// Removes the volume's file.
    Remove { volid: String },
    /// Moves an uploaded file (spooled by the request) into the storage.
    StoreUpload { spooled: PathBuf, volid: String },
}

/// What a volume operation did: log lines for the task, and the volume's real size when the
/// store knows it (an imported image's virtual size).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeDone {
    pub log: Vec<String>,
    pub size: Option<u64>,
}

/// Makes the files behind volumes.
pub trait VolumeStore: Send + Sync + 'static {
    /// Runs one operation on a node's storage.
    fn run<'a>(&'a self, node: &'a str, op: VolumeOp) -> BoxFuture<'a, Result<VolumeDone, String>>;
    /// Where upload bodies are written while they arrive; `None` keeps no bytes (sim).
    fn spool_dir(&self) -> Option<&Path>;
    /// The file of a volume, if the store keeps files.
    fn path(&self, node: &str, volid: &str) -> Option<PathBuf>;
}

/// The sim store: volumes are metadata only.
#[derive(Debug, Default)]
pub struct NoVolumes;

impl VolumeStore for NoVolumes {
    fn run<'a>(
        &'a self,
        _node: &'a str,
        _op: VolumeOp,
    ) -> BoxFuture<'a, Result<VolumeDone, String>> {
        Box::pin(async { Ok(VolumeDone::default()) })
    }

    fn spool_dir(&self) -> Option<&Path> {
        None
    }

    fn path(&self, _node: &str, _volid: &str) -> Option<PathBuf> {
        None
    }
}
