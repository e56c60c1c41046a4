//! KVM when a short probe boot works, TCG otherwise: on some hosts `/dev/kvm` exists but a
//! guest dies at once (e.g. `failed to set MSR 0x10a`, "KVM internal error").

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::command::Accel;

/// A guest that is still running this long after start is taken as working.
const PROBE_TIME: Duration = Duration::from_secs(3);

/// Which accelerator to use: `Some` forces one, `None` probes KVM.
pub async fn choose(forced: Option<Accel>) -> Accel {
    if let Some(accel) = forced {
        return accel;
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    if kvm_boots().await {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// Boots a diskless guest under KVM (SeaBIOS runs, finds nothing to boot and waits) and
/// checks it is still alive with nothing on stderr after the probe time.
async fn kvm_boots() -> bool {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(Accel::Kvm.args())
        .args([
            "-m",
            "128",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let Ok(mut child) = command.spawn() else {
        return false;
    };
    let exited = tokio::time::timeout(PROBE_TIME, child.wait()).await;
    if exited.is_ok() {
        return false;
    }
    let _ = child.start_kill();
    let output = child.wait_with_output().await;
    output.is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("error"))
}
