//! The `qemu` backend: a QEMU process per running VM on the lab's qcow2 volumes, its NICs on
//! taps of the namespace's bridges, the NoCloud ISO written at every start, stop and
//! shutdown over QMP, and the PVE agent endpoints proxied to the guest's qemu-guest-agent.

mod accel;
mod agent;
mod command;
mod disks;
pub mod host;
pub mod netns;
mod qmp;
pub mod record;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::backend::{
    AgentCommand, AgentError, Backend, BackendKind, BoxFuture, GuestSpec, VolumeStore,
};
use agent::GuestAgent;
use command::GuestFiles;

pub use command::Accel;
pub use disks::FileVolumes;

/// How long QEMU may take until its QMP socket answers after spawn.
const QMP_READY: Duration = Duration::from_secs(20);
/// A QMP command that does not answer within this has failed.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `quit` may take before the process is killed.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// Where a qemu lab keeps its files, and how it runs guests.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// `<data dir>`: `storage/` (volumes), `vms/<vmid>/` (sockets, logs, pid file), `tmp/`.
    pub data_dir: PathBuf,
    /// The network namespace the lab runs in (the process must already be inside it).
    pub namespace: String,
    /// `None`: KVM if a probe boot works, TCG otherwise.
    pub accel: Option<Accel>,
}

impl QemuOptions {
    pub(crate) fn volumes(&self) -> FileVolumes {
        FileVolumes::new(self.data_dir.join("storage"), self.data_dir.join("tmp"))
    }
}

struct Guest {
    pid: u32,
    files: GuestFiles,
    agent: GuestAgent,
    /// Turns true when the QEMU process has exited (and its taps are gone).
    exited: watch::Receiver<bool>,
}

/// Real guests under QEMU.
pub struct QemuBackend {
    data_dir: PathBuf,
    accel: Accel,
    volumes: Arc<FileVolumes>,
    guests: Mutex<HashMap<u32, Arc<Guest>>>,
}

impl QemuBackend {
    /// Probes the accelerator (unless forced) and prepares the data directory.
    pub async fn new(options: &QemuOptions, volumes: Arc<FileVolumes>) -> Result<Self, String> {
        for dir in ["storage", "vms", "tmp"] {
            let path = options.data_dir.join(dir);
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        let accel = accel::choose(options.accel).await;
        tracing::info!("qemu backend: {accel:?} acceleration");
        Ok(Self {
            data_dir: options.data_dir.clone(),
            accel,
            volumes,
            guests: Mutex::new(HashMap::new()),
        })
    }

    /// The accelerator guests run with.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    fn guest(&self, vmid: u32) -> Option<Arc<Guest>> {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vmid)
            .cloned()
    }

    fn take(&self, vmid: u32) -> Option<Arc<Guest>> {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vmid)
    }

    async fn boot(&self, spec: GuestSpec) -> Result<(), String> {
        if let Some(old) = self.take(spec.vmid) {
            stop_now(&old).await;
        }
        let files = GuestFiles {
            dir: self.data_dir.join("vms").join(spec.vmid.to_string()),
        };
        tokio::fs::create_dir_all(&files.dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", files.dir.display()))?;
        for stale in [files.qmp(), files.agent(), files.pid_file()] {
            let _ = tokio::fs::remove_file(stale).await;
        }
        self.write_cloudinit(&spec).await?;
        let mut taps = Vec::new();
        for nic in &spec.nics {
            let Some(bridge) = &nic.bridge else { continue };
            netns::ensure_bridge(bridge).await?;
            let tap = command::tap_name(spec.vmid, nic);
            netns::add_tap(&tap, bridge).await?;
            taps.push(tap);
        }
        let volumes = Arc::clone(&self.volumes);
        let node = spec.node.clone();
        let args = command::arguments(&spec, self.accel, &files, &|disk| {
            volumes.path(&node, &disk.volid)
        })?;
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
        let guest = Arc::new(Guest {
            pid,
            agent: GuestAgent::new(files.agent(), u64::from(spec.vmid) << 32),
            files,
            exited,
        });
        if let Err(e) = wait_ready(&guest).await {
            stop_now(&guest).await;
            let log = tokio::fs::read_to_string(guest.files.qemu_log())
                .await
                .unwrap_or_default();
            return Err(format!("start failed: {e}: {}", log.trim()));
        }
        tracing::info!(vmid = spec.vmid, pid, "guest started");
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(spec.vmid, guest);
        Ok(())
    }

    /// The NoCloud ISO on the cloud-init drive's volume, from this start's seed.
    async fn write_cloudinit(&self, spec: &GuestSpec) -> Result<(), String> {
        let Some(drive) = spec.disks.iter().find(|d| d.cloudinit) else {
            return Ok(());
        };
        let path = self
            .volumes
            .path(&spec.node, &drive.volid)
            .ok_or_else(|| format!("unable to parse volume ID '{}'", drive.volid))?;
        let seed = &spec.nocloud;
        let mut files: Vec<(&str, &[u8])> = vec![
            ("user-data", seed.user_data.as_bytes()),
            ("meta-data", seed.meta_data.as_bytes()),
            ("network-config", seed.network_config.as_bytes()),
        ];
        if let Some(vendor) = &seed.vendor_data {
            files.push(("vendor-data", vendor.as_bytes()));
        }
        let iso = kiln_cloud_init::build_cidata_iso_from(&files)
            .map_err(|e| format!("generating cloud-init ISO failed: {e}"))?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(&path, iso)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Waits until QMP answers `query-status`, or the process died.
async fn wait_ready(guest: &Guest) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + QMP_READY;
    loop {
        if *guest.exited.borrow() {
            return Err("QEMU exited".to_string());
        }
        let status = qmp::execute(&guest.files.qmp(), "query-status", None, QMP_TIMEOUT).await;
        match status {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits for the process to exit, up to `limit`; whether it did.
async fn wait_exit(guest: &Guest, limit: Duration) -> bool {
    let mut exited = guest.exited.clone();
    tokio::time::timeout(limit, exited.wait_for(|done| *done))
        .await
        .is_ok()
}

/// `quit` over QMP, then SIGKILL if QEMU is still there.
async fn stop_now(guest: &Guest) {
    let _ = qmp::execute(&guest.files.qmp(), "quit", None, QMP_TIMEOUT).await;
    if !wait_exit(guest, QUIT_WAIT).await {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(guest.pid).unwrap_or(i32::MAX));
        if !*guest.exited.borrow() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        wait_exit(guest, QUIT_WAIT).await;
    }
}

impl Backend for QemuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn power_on(&self, spec: GuestSpec) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.boot(spec))
    }

    fn power_off(&self, vmid: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(guest) = self.take(vmid) {
                stop_now(&guest).await;
            }
        })
    }

    fn alive(&self, vmid: u32) -> bool {
        self.guest(vmid)
            .is_some_and(|guest| !*guest.exited.borrow())
    }

    fn shutdown(&self, vmid: u32, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(guest) = self.take(vmid) else {
                return;
            };
            let asked =
                qmp::execute(&guest.files.qmp(), "system_powerdown", None, QMP_TIMEOUT).await;
            if asked.is_err() || !wait_exit(&guest, timeout).await {
                stop_now(&guest).await;
            }
        })
    }

    fn resize_running(
        &self,
        vmid: u32,
        drive: &str,
        size: u64,
    ) -> BoxFuture<'_, Result<(), String>> {
        let drive = drive.to_string();
        Box::pin(async move {
            let guest = self
                .guest(vmid)
                .ok_or_else(|| format!("VM {vmid} not running"))?;
            let arguments = serde_json::json!({"device": format!("drive-{drive}"), "size": size});
            qmp::execute(
                &guest.files.qmp(),
                "block_resize",
                Some(arguments),
                QMP_TIMEOUT,
            )
            .await
            .map(|_| ())
        })
    }

    fn stop_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let guests: Vec<Arc<Guest>> = self
                .guests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .map(|(_, g)| g)
                .collect();
            for guest in guests {
                stop_now(&guest).await;
            }
        })
    }

    fn agent(&self, vmid: u32, command: AgentCommand) -> BoxFuture<'_, Result<Value, AgentError>> {
        Box::pin(async move {
            let guest = self.guest(vmid).ok_or(AgentError::NotRunning)?;
            if *guest.exited.borrow() {
                return Err(AgentError::NotRunning);
            }
            guest.agent.run(&command).await
        })
    }
}
