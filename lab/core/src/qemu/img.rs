//! Disk files with `qemu-img`: new qcow2 disks, conversions (imports, full copies),
//! copy-on-write overlays (linked clones), growth, and a file's virtual size. Every call
//! has a timeout: a hung `qemu-img` must not hold an emulator's task forever.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// A conversion of a multi-GiB image under load can take minutes.
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(900);

/// A new, empty qcow2 disk of `size` bytes.
pub async fn create(path: &Path, size: u64) -> Result<(), String> {
    make_parent(path).await?;
    qemu_img(&["create", "-f", "qcow2"], &[path], &[&size.to_string()]).await?;
    Ok(())
}

/// A qcow2 copy of `from`, whose format its extension names (`.raw`/`.img`, `.vmdk`,
/// otherwise qcow2).
pub async fn convert(from: &Path, to: &Path) -> Result<(), String> {
    make_parent(to).await?;
    let format = source_format(from);
    qemu_img(&["convert", "-f", format, "-O", "qcow2"], &[from, to], &[]).await?;
    Ok(())
}

/// A qcow2 overlay at `to` on the qcow2 `base` (which must stay where it is).
pub async fn overlay(base: &Path, to: &Path) -> Result<(), String> {
    make_parent(to).await?;
    let backing = base.display().to_string();
    qemu_img(
        &["create", "-f", "qcow2", "-F", "qcow2", "-b", &backing],
        &[to],
        &[],
    )
    .await?;
    Ok(())
}

/// Grows a qcow2 disk to `size` bytes.
pub async fn resize(path: &Path, size: u64) -> Result<(), String> {
    qemu_img(&["resize", "-f", "qcow2"], &[path], &[&size.to_string()]).await?;
    Ok(())
}

/// Creates the directory `path` goes into.
pub async fn make_parent(path: &Path) -> Result<(), String> {
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

/// The virtual size of a qcow2 file (what the guest sees), in bytes.
pub async fn virtual_size(path: &Path) -> Result<u64, String> {
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
    fn import_formats_follow_the_extension() {
        assert_eq!(source_format(Path::new("/i/debian.raw")), "raw");
        assert_eq!(source_format(Path::new("/i/debian.img")), "raw");
        assert_eq!(source_format(Path::new("/i/disk.vmdk")), "vmdk");
        assert_eq!(source_format(Path::new("/i/debian.qcow2")), "qcow2");
    }
}
