//! Where guests run. The API layer (`crate::pve`) keeps PVE's view (configs, tasks, locks)
//! and asks a backend to power guests on and off and to answer guest-agent commands, and a
//! volume store to make the disk files behind its volumes.
//! `sim` has no guests and no disk files: a state machine with a boot delay. `qemu`
//! (`crate::qemu`) runs a QEMU process per VM on qcow2 files and proxies the real guest
//! agent. `AgentError` is the guest agent protocol's own (`kiln_lab_core::qemu`), which the
//! sim answers in too.

mod sim;
mod volumes;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use crate::cloudinit::NoCloud;

pub use kiln_lab_core::qemu::AgentError;
pub use sim::SimBackend;
pub use volumes::{NoVolumes, VolumeDone, VolumeOp, VolumeStore};

/// A boxed future, so that backends can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which backend a lab runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// No guests; the guest agent answers after a boot delay with the configured address.
    #[default]
    Sim,
    /// Real QEMU guests inside the lab's network namespace.
    Qemu,
}

/// One network interface of a guest, from `netN` and `ipconfigN`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestNic {
    /// `eth0` for `net0`, ...
    pub name: String,
    /// Lower-case MAC.
    pub mac: String,
    /// The NIC model of `netN` (`virtio`, `e1000`, ...).
    pub model: String,
    /// The bridge of `netN` (`vmbr0`), if any.
    pub bridge: Option<String>,
    /// Static IPv4 `addr/prefix` from `ipconfigN`, if any.
    pub ipv4: Option<String>,
    /// Static IPv6 `addr/prefix` from `ipconfigN`, if any.
    pub ipv6: Option<String>,
}

/// One drive of a guest (`scsi0`, `ide2`, ...), from its config.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestDisk {
    /// The config key, e.g. `scsi0`.
    pub key: String,
    /// The volume ID, e.g. `local-lvm:base-9000-disk-0/vm-101-disk-0`.
    pub volid: String,
    /// A CD-ROM (the cloud-init drive, an ISO) rather than a disk.
    pub cdrom: bool,
    /// The cloud-init drive, whose ISO is written at every start.
    pub cloudinit: bool,
    /// Position in the `boot: order=` list, if listed.
    pub boot_index: Option<u32>,
}

/// What a backend needs to boot a VM, taken from its config at start.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    /// `memory` in MiB.
    pub memory_mib: u64,
    /// `sockets` × `cores`.
    pub sockets: u32,
    pub cores: u32,
    /// Whether `agent: 1` is set (the virtio-serial channel is added).
    pub agent: bool,
    pub disks: Vec<GuestDisk>,
    pub nics: Vec<GuestNic>,
    /// The NoCloud data generated at this start.
    pub nocloud: NoCloud,
    /// The public host key the guest presents (sim: derived from the VMID and name).
    pub host_key: String,
}

/// A guest-agent command, as the PVE agent endpoints send them.
#[derive(Debug, Clone)]
pub enum AgentCommand {
    Ping,
    NetworkGetInterfaces,
    FileRead { file: String },
}

/// A place guests run.
pub trait Backend: Send + Sync + 'static {
    fn kind(&self) -> BackendKind;
    /// Boots the guest; returns when the VM is running (not when its agent answers).
    fn power_on(&self, spec: GuestSpec) -> BoxFuture<'_, Result<(), String>>;
    /// Powers the guest off at once.
    fn power_off(&self, vmid: u32) -> BoxFuture<'_, ()>;
    /// Whether a guest the lab powered on is still running (a real guest may power itself
    /// off).
    fn alive(&self, _vmid: u32) -> bool {
        true
    }
    /// Asks the guest to shut down (ACPI), and powers it off when it has not within `timeout`.
    fn shutdown(&self, vmid: u32, _timeout: Duration) -> BoxFuture<'_, ()> {
        self.power_off(vmid)
    }
    /// Grows a disk of a running guest (`drive` is the config key, e.g. `scsi0`).
    fn resize_running(
        &self,
        _vmid: u32,
        _drive: &str,
        _size: u64,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Stops every guest at once (the lab is shutting down).
    fn stop_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Runs one guest-agent command; the value is what PVE puts under `result`.
    fn agent(&self, vmid: u32, command: AgentCommand) -> BoxFuture<'_, Result<Value, AgentError>>;
}
