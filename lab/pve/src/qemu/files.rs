//! The qemu backend's volume store: every PVE volume is a file under the lab's data
//! directory, made with `qemu-img` (qcow2 disks, overlays for linked clones) inside the PVE
//! task that asked for it.

use std::path::{Component, Path, PathBuf};

use kiln_lab_core::qemu::img;

use crate::backend::{BoxFuture, VolumeDone, VolumeOp, VolumeStore};

/// Volumes as files: `<root>/<node>/<storage>/<name>` (`vm-101-disk-0.qcow2`,
/// `vm-101-cloudinit.iso`, `import/debian.qcow2`).
#[derive(Debug)]
pub struct FileVolumes {
    root: PathBuf,
    spool: PathBuf,
}

impl FileVolumes {
    /// Keeps volumes under `root` and spools uploads into `spool` (same file system, so that
    /// storing an upload is a rename).
    pub fn new(root: PathBuf, spool: PathBuf) -> Self {
        Self { root, spool }
    }

    /// The store of a qemu lab: `storage/` and `tmp/` in its data directory.
    pub fn under(data_dir: &Path) -> Self {
        Self::new(data_dir.join("storage"), data_dir.join("tmp"))
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn spool(&self) -> &Path {
        &self.spool
    }

    fn file(&self, node: &str, volid: &str) -> Result<PathBuf, String> {
        self.path(node, volid)
            .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))
    }

    async fn apply(&self, node: &str, op: VolumeOp) -> Result<VolumeDone, String> {
        match op {
            VolumeOp::Create { volid, size } => {
                img::create(&self.file(node, &volid)?, size).await?;
                Ok(done(format!("  Logical volume \"{volid}\" created.")))
            }
            VolumeOp::Import { source, volid } => {
                let from = self.file(node, &source)?;
                let to = self.file(node, &volid)?;
                if !from.is_file() {
                    return Err(format!("volume '{source}' does not exist"));
                }
                img::convert(&from, &to).await?;
                let size = img::virtual_size(&to).await?;
                Ok(VolumeDone {
                    log: vec![format!("importing disk '{source}' to '{volid}'")],
                    size: Some(size),
                })
            }
            VolumeOp::LinkedClone { base, volid } => {
                img::overlay(&self.file(node, &base)?, &self.file(node, &volid)?).await?;
                Ok(VolumeDone::default())
            }
            VolumeOp::FullClone { source, volid } => {
                img::convert(&self.file(node, &source)?, &self.file(node, &volid)?).await?;
                Ok(done(format!("transferred all of {source} to {volid}")))
            }
            VolumeOp::Resize { volid, size } => {
                img::resize(&self.file(node, &volid)?, size).await?;
                Ok(VolumeDone::default())
            }
            VolumeOp::Rename { from, to } => {
                let (from_path, to_path) = (self.file(node, &from)?, self.file(node, &to)?);
                img::make_parent(&to_path).await?;
                tokio::fs::rename(&from_path, &to_path)
                    .await
                    .map_err(|e| format!("rename '{from}' to '{to}' failed: {e}"))?;
                Ok(VolumeDone::default())
            }
            VolumeOp::Remove { volid } => {
                let path = self.file(node, &volid)?;
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(VolumeDone::default()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VolumeDone::default()),
                    Err(e) => Err(format!("unable to remove '{volid}': {e}")),
                }
            }
            VolumeOp::StoreUpload { spooled, volid } => {
                let to = self.file(node, &volid)?;
                img::make_parent(&to).await?;
                tokio::fs::rename(&spooled, &to)
                    .await
                    .map_err(|e| format!("unable to store upload as '{volid}': {e}"))?;
                Ok(VolumeDone::default())
            }
        }
    }
}

impl VolumeStore for FileVolumes {
    fn run<'a>(&'a self, node: &'a str, op: VolumeOp) -> BoxFuture<'a, Result<VolumeDone, String>> {
        Box::pin(self.apply(node, op))
    }

    fn spool_dir(&self) -> Option<&Path> {
        Some(&self.spool)
    }

    fn path(&self, node: &str, volid: &str) -> Option<PathBuf> {
        let (storage, name) = volid.split_once(':')?;
        let relative = if storage == "local" {
            PathBuf::from(name)
        } else {
            // A linked clone's volid names its base first (`base-9000-disk-0/vm-101-disk-0`);
            // the file is the clone's own.
            let own = name.rsplit('/').next()?;
            let extension = if own.ends_with("-cloudinit") {
                "iso"
            } else {
                "qcow2"
            };
            PathBuf::from(format!("{own}.{extension}"))
        };
        let plain = |p: &Path| p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain(Path::new(node)) || !plain(Path::new(storage)) || !plain(&relative) {
            return None;
        }
        Some(self.root.join(node).join(storage).join(relative))
    }
}

fn done(line: String) -> VolumeDone {
    VolumeDone {
        log: vec![line],
        size: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_map_to_files_and_refuse_escapes() {
        let store = FileVolumes::new(PathBuf::from("/d/storage"), PathBuf::from("/d/tmp"));
        let path = |v: &str| store.path("pve1", v);
        assert_eq!(
            path("local-lvm:base-9000-disk-0/vm-101-disk-0"),
            Some(PathBuf::from(
                "/d/storage/pve1/local-lvm/vm-101-disk-0.qcow2"
            ))
        );
        assert_eq!(
            path("local-lvm:vm-101-cloudinit"),
            Some(PathBuf::from(
                "/d/storage/pve1/local-lvm/vm-101-cloudinit.iso"
            ))
        );
        assert_eq!(
            path("local:import/debian.qcow2"),
            Some(PathBuf::from("/d/storage/pve1/local/import/debian.qcow2"))
        );
        assert_eq!(path("local:import/../../etc/passwd"), None);
        assert_eq!(path("no-colon"), None);
    }
}
