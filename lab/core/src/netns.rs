//! The lab's network namespace: the API server, the guests' bridges and taps, and the
//! commands `kiln-lab exec` runs all live in it, so that no lab address ever lands on a
//! host interface.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::CloneFlags;

use crate::error::LabError;

/// `kiln-lab-<instance>`.
pub fn namespace_name(instance: &str) -> String {
    format!("kiln-lab-{instance}")
}

fn mount_point(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Whether the namespace exists (`ip netns add` made its mount point).
pub fn exists(name: &str) -> bool {
    mount_point(name).exists()
}

/// Creates the namespace and moves the calling thread into it. Threads created afterwards
/// (the async runtime's) and every child process inherit it, so call this before the
/// runtime starts.
pub fn create_and_enter(name: &str) -> Result<(), LabError> {
    if exists(name) {
        return Err(LabError::Namespace(format!(
            "network namespace '{name}' already exists (a lab is running or was not taken down: run `kiln-lab down`)"
        )));
    }
    ip(&["netns", "add", name])?;
    enter(name)
}

/// Moves the calling thread into an existing namespace.
pub fn enter(name: &str) -> Result<(), LabError> {
    let file = std::fs::File::open(mount_point(name))
        .map_err(|e| LabError::Namespace(format!("cannot open network namespace '{name}': {e}")))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| LabError::Namespace(format!("cannot enter network namespace '{name}': {e}")))
}

/// Whether the calling thread is in the namespace (compares the namespace inodes).
pub fn inside(name: &str) -> bool {
    let ours = std::fs::metadata("/proc/thread-self/ns/net");
    let theirs = std::fs::metadata(mount_point(name));
    match (ours, theirs) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Removes the namespace (its bridges and taps go with it once no process is left in it).
pub fn delete(name: &str) -> Result<(), LabError> {
    if exists(name) {
        ip(&["netns", "delete", name])?;
    }
    Ok(())
}

/// Brings up `lo` and a bridge carrying the gateway address, inside the namespace only.
pub fn set_up_gateway(name: &str, bridge: &str, cidr: &str) -> Result<(), LabError> {
    if !inside(name) {
        return Err(LabError::Namespace(format!(
            "refusing to configure '{bridge}' outside the lab's namespace '{name}'"
        )));
    }
    ip(&["link", "set", "lo", "up"])?;
    ip(&["link", "add", bridge, "type", "bridge"])?;
    ip(&["addr", "add", cidr, "dev", bridge])?;
    ip(&["link", "set", bridge, "up"])
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Namespace(format!("cannot run `ip` (iproute2): {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Namespace(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Async `ip` for the backend (bridges and taps made while serving).
async fn ip_async(args: &[&str]) -> Result<(), String> {
    let output = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Makes the bridge if it does not exist yet (a VM's `bridge=` other than the gateway's;
/// it gets no address).
pub(crate) async fn ensure_bridge(bridge: &str) -> Result<(), String> {
    if ip_async(&["link", "show", "dev", bridge]).await.is_ok() {
        return Ok(());
    }
    ip_async(&["link", "add", bridge, "type", "bridge"]).await?;
    ip_async(&["link", "set", bridge, "up"]).await
}

/// A tap for one NIC, attached to its bridge (a stale one of the same name is replaced).
pub(crate) async fn add_tap(tap: &str, bridge: &str) -> Result<(), String> {
    let _ = ip_async(&["link", "delete", tap]).await;
    ip_async(&["tuntap", "add", "dev", tap, "mode", "tap"]).await?;
    ip_async(&["link", "set", tap, "master", bridge]).await?;
    ip_async(&["link", "set", tap, "up"]).await
}

pub(crate) async fn delete_tap(tap: &str) {
    let _ = ip_async(&["link", "delete", tap]).await;
}
