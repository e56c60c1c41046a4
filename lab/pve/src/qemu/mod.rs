//! The `qemu` backend: a PVE VM becomes a `kiln_lab_core::qemu::Machine` — its config
//! turned into QEMU's terms (PVE's tap names, the volumes' files), the NoCloud ISO written
//! at every start, stop and shutdown over QMP, the PVE agent endpoints proxied to the
//! guest's qemu-guest-agent.

mod files;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kiln_lab_core::qemu::{Accel, Drive, Machine, MachineFiles, MachineSpec, Nic, QemuOptions};
use serde_json::Value;

use crate::backend::{
    AgentCommand, AgentError, Backend, BackendKind, BoxFuture, GuestSpec, VolumeStore,
};

pub use files::FileVolumes;

/// Real guests under QEMU.
pub struct QemuBackend {
    data_dir: PathBuf,
    accel: Accel,
    volumes: Arc<FileVolumes>,
    guests: Mutex<HashMap<u32, Arc<Machine>>>,
}

impl QemuBackend {
    /// Probes the accelerator (unless forced) and prepares the data directory.
    pub async fn new(options: &QemuOptions, volumes: Arc<FileVolumes>) -> Result<Self, String> {
        let machines = MachineFiles::all(&options.data_dir);
        for dir in [machines.as_path(), volumes.root(), volumes.spool()] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let accel = kiln_lab_core::qemu::choose_accel(options.accel).await;
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

    fn guest(&self, vmid: u32) -> Option<Arc<Machine>> {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vmid)
            .cloned()
    }

    fn take(&self, vmid: u32) -> Option<Arc<Machine>> {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&vmid)
    }

    async fn boot(&self, spec: GuestSpec) -> Result<(), String> {
        if let Some(old) = self.take(spec.vmid) {
            old.stop().await;
        }
        self.write_cloudinit(&spec).await?;
        let machine = self.machine_spec(&spec)?;
        let files = MachineFiles::new(&self.data_dir, &spec.vmid.to_string());
        let guest = Machine::start(&machine, self.accel, files, u64::from(spec.vmid) << 32).await?;
        tracing::info!(vmid = spec.vmid, pid = guest.pid(), "guest started");
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(spec.vmid, Arc::new(guest));
        Ok(())
    }

    /// The VM in QEMU's terms: its volumes' files (which must exist), its NICs on PVE's
    /// taps (`tap<vmid>i<N>`).
    fn machine_spec(&self, spec: &GuestSpec) -> Result<MachineSpec, String> {
        let mut drives = Vec::new();
        for disk in &spec.disks {
            let path = self
                .volumes
                .path(&spec.node, &disk.volid)
                .ok_or_else(|| format!("unable to parse volume ID '{}'", disk.volid))?;
            if !path.exists() {
                return Err(format!("volume '{}' does not exist", disk.volid));
            }
            drives.push(Drive {
                key: disk.key.clone(),
                path,
                cdrom: disk.cdrom,
                boot_index: disk.boot_index,
            });
        }
        let nics = spec
            .nics
            .iter()
            .map(|nic| {
                let index = nic.name.trim_start_matches("eth");
                Nic {
                    id: format!("net{index}"),
                    model: nic.model.clone(),
                    mac: nic.mac.clone(),
                    tap: format!("tap{}i{index}", spec.vmid),
                    bridge: nic.bridge.clone(),
                }
            })
            .collect();
        Ok(MachineSpec {
            name: format!("vm{}", spec.vmid),
            memory_mib: spec.memory_mib,
            sockets: spec.sockets,
            cores: spec.cores,
            agent: spec.agent,
            drives,
            nics,
        })
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
        kiln_lab_core::qemu::img::make_parent(&path).await?;
        tokio::fs::write(&path, iso)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
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
                guest.stop().await;
            }
        })
    }

    fn alive(&self, vmid: u32) -> bool {
        self.guest(vmid).is_some_and(|guest| guest.running())
    }

    fn shutdown(&self, vmid: u32, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(guest) = self.take(vmid) {
                guest.power_down(timeout).await;
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
            guest.qmp("block_resize", Some(arguments)).await.map(|_| ())
        })
    }

    fn stop_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let guests: Vec<Arc<Machine>> = self
                .guests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .map(|(_, g)| g)
                .collect();
            for guest in guests {
                guest.stop().await;
            }
        })
    }

    fn agent(&self, vmid: u32, command: AgentCommand) -> BoxFuture<'_, Result<Value, AgentError>> {
        Box::pin(async move {
            let guest = self.guest(vmid).ok_or(AgentError::NotRunning)?;
            if !guest.running() {
                return Err(AgentError::NotRunning);
            }
            let agent = guest.agent();
            match command {
                AgentCommand::Ping => agent.call("guest-ping", None).await,
                AgentCommand::NetworkGetInterfaces => {
                    agent.call("guest-network-get-interfaces", None).await
                }
                AgentCommand::FileRead { file } => agent.read_file(&file).await,
            }
        })
    }
}
