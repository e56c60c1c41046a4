//! A running QEMU process: spawned with its taps on their bridges, ready once QMP answers,
//! stopped with QMP `quit` (SIGKILL when that does not do it) or powered down over ACPI.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::agent::GuestAgent;
use super::command::{Accel, MachineSpec, arguments};
use super::{MachineFiles, qmp};
use crate::netns;

/// How long QEMU may take until its QMP socket answers after spawn.
const QMP_READY: Duration = Duration::from_secs(20);
/// A QMP command that does not answer within this has failed.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `quit` may take before the process is killed.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// One QEMU process and the channels to it.
pub struct Machine {
    pid: u32,
    files: MachineFiles,
    agent: GuestAgent,
    /// Turns true when the QEMU process has exited (and its taps are gone).
    exited: watch::Receiver<bool>,
}

impl Machine {
    /// Makes the taps, spawns `qemu-system-x86_64` and returns once QMP answers; on failure
    /// the process is stopped and the error carries QEMU's stderr. `agent_seed` starts the
    /// guest agent's sync ids (see `GuestAgent::new`).
    pub async fn start(
        spec: &MachineSpec,
        accel: Accel,
        files: MachineFiles,
        agent_seed: u64,
    ) -> Result<Self, String> {
        tokio::fs::create_dir_all(&files.dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", files.dir.display()))?;
        for stale in [files.qmp(), files.agent(), files.pid_file()] {
            let _ = tokio::fs::remove_file(stale).await;
        }
        let args = arguments(spec, accel, &files)?;
        let mut taps = Vec::new();
        for nic in &spec.nics {
            let Some(bridge) = &nic.bridge else { continue };
            netns::ensure_bridge(bridge).await?;
            netns::add_tap(&nic.tap, bridge).await?;
            taps.push(nic.tap.clone());
        }
        let log = std::fs::File::create(files.qemu_log())
            .map_err(|e| format!("cannot create {}: {e}", files.qemu_log().display()))?;
        let mut child = tokio::process::Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!("cannot run qemu-system-x86_64 (Debian package qemu-system-x86): {e}")
            })?;
        let pid = child.id().unwrap_or_default();
        let (exited_tx, exited) = watch::channel(false);
        tokio::spawn(async move {
            let _ = child.wait().await;
            for tap in taps {
                netns::delete_tap(&tap).await;
            }
            let _ = exited_tx.send(true);
        });
        let machine = Self {
            pid,
            agent: GuestAgent::new(files.agent(), agent_seed),
            files,
            exited,
        };
        if let Err(e) = machine.wait_ready().await {
            machine.stop().await;
            let log = tokio::fs::read_to_string(machine.files.qemu_log())
                .await
                .unwrap_or_default();
            return Err(format!("start failed: {e}: {}", log.trim()));
        }
        Ok(machine)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the QEMU process is still there (a guest may power itself off).
    pub fn running(&self) -> bool {
        !*self.exited.borrow()
    }

    /// The guest's qemu-guest-agent.
    pub fn agent(&self) -> &GuestAgent {
        &self.agent
    }

    /// Runs one QMP command; its `return`.
    pub async fn qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        qmp::execute(&self.files.qmp(), command, arguments, QMP_TIMEOUT).await
    }

    /// `quit` over QMP, then SIGKILL if QEMU is still there.
    pub async fn stop(&self) {
        let _ = self.qmp("quit", None).await;
        if !self.wait_exit(QUIT_WAIT).await {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
            if self.running() {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            self.wait_exit(QUIT_WAIT).await;
        }
    }

    /// ACPI `system_powerdown`; a stop when the guest has not gone within `timeout`.
    pub async fn power_down(&self, timeout: Duration) {
        let asked = self.qmp("system_powerdown", None).await;
        if asked.is_err() || !self.wait_exit(timeout).await {
            self.stop().await;
        }
    }

    /// Waits until QMP answers `query-status`, or the process died.
    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + QMP_READY;
        loop {
            if !self.running() {
                return Err("QEMU exited".to_string());
            }
            match self.qmp("query-status", None).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits for the process to exit, up to `limit`; whether it did.
    async fn wait_exit(&self, limit: Duration) -> bool {
        let mut exited = self.exited.clone();
        tokio::time::timeout(limit, exited.wait_for(|done| *done))
            .await
            .is_ok()
    }
}
