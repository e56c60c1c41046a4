//! The qemu backend's volume store: every volume is a file under the lab's data directory,
//! made with `qemu-img` (qcow2 disks, overlays for linked clones) inside the PVE task.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::backend::{BoxFuture, VolumeDone, VolumeOp, VolumeStore};

/// A conversion of a multi-GiB image under load can take minutes; a hung `qemu-img` must not
/// hold a task forever.
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(900);

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

    fn file(&self, node: &str, volid: &str) -> Result<PathBuf, String> {
        self.path(node, volid)
            .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))
    }

    async fn apply(&self, node: &str, op: VolumeOp) -> Result<VolumeDone, String> {
        match op {
            VolumeOp::Create { volid, size } => {
                let path = self.file(node, &volid)?;
                prepare(&path).await?;
                qemu_img(&["create", "-f", "qcow2"], &[&path], &[&size.to_string()]).await?;
                Ok(done(format!("  Logical volume \"{volid}\" created.")))
            }
            VolumeOp::Import { source, volid } => {
                let from = self.file(node, &source)?;
                let to = self.file(node, &volid)?;
                if !from.is_file() {
                    return Err(format!("volume '{source}' does not exist"));
                }
                prepare(&to).await?;
                let format = source_format(&from);
                qemu_img(
                    &["convert", "-f", format, "-O", "qcow2"],
                    &[&from, &to],
                    &[],
                )
                .await?;
                let size = virtual_size(&to).await?;
                Ok(VolumeDone {
                    log: vec![format!("importing disk '{source}' to '{volid}'")],
                    size: Some(size),
                })
            }
            VolumeOp::LinkedClone { base, volid } => {
                let base_path = self.file(node, &base)?;
                let to = self.file(node, &volid)?;
                prepare(&to).await?;
                let backing = base_path.display().to_string();
                qemu_img(
                    &["create", "-f", "qcow2", "-F", "qcow2", "-b", &backing],
                    &[&to],
                    &[],
                )
                .await?;
                Ok(VolumeDone::default())
            }
            VolumeOp::FullClone { source, volid } => {
                let from = self.file(node, &source)?;
                let to = self.file(node, &volid)?;
                prepare(&to).await?;
                qemu_img(
                    &["convert", "-f", "qcow2", "-O", "qcow2"],
                    &[&from, &to],
                    &[],
                )
                .await?;
                Ok(done(format!("transferred all of {source} to {volid}")))
            }
            VolumeOp::Resize { volid, size } => {
                let path = self.file(node, &volid)?;
                qemu_img(&["resize", "-f", "qcow2"], &[&path], &[&size.to_string()]).await?;
                Ok(VolumeDone::default())
            }
            VolumeOp::Rename { from, to } => {
                let (from_path, to_path) = (self.file(node, &from)?, self.file(node, &to)?);
                prepare(&to_path).await?;
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
                prepare(&to).await?;
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

async fn prepare(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("unable to create '{}': {e}", dir.display()))?;
    }
    Ok(())
}

/// The input format of an imported file, from its extension (as pve-storage's import
/// content type names them).
fn source_format(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("raw" | "img") => "raw",
        Some("vmdk") => "vmdk",
        _ => "qcow2",
    }
}

/// Runs `qemu-img OPTIONS PATHS EXTRA` with a timeout; its stderr is the error.
async fn qemu_img(options: &[&str], paths: &[&Path], extra: &[&str]) -> Result<String, String> {
    let mut command = Command::new("qemu-img");
    command
        .args(options)
        .args(paths)
        .args(extra)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let what = format!("qemu-img {}", options.first().copied().unwrap_or_default());
    let output = tokio::time::timeout(QEMU_IMG_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("{what} timed out after {QEMU_IMG_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run qemu-img (Debian package qemu-utils): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

async fn virtual_size(path: &Path) -> Result<u64, String> {
    let info = qemu_img(&["info", "--output=json", "-f", "qcow2"], &[path], &[]).await?;
    let json: Value = serde_json::from_str(&info)
        .map_err(|e| format!("qemu-img info: unreadable answer: {e}"))?;
    json.get("virtual-size")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("qemu-img info names no virtual size for {}", path.display()))
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
