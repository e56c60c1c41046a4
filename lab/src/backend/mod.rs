//! Where guests run. The API layer (`crate::pve`) keeps PVE's view (configs, tasks, locks)
//! and asks a backend to power guests on and off and to answer guest-agent commands.
//! `sim` has no guests: a state machine with a boot delay. `qemu` (a later issue) will run a
//! QEMU process per VM and proxy the real guest agent.

mod sim;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::cloudinit::NoCloud;

pub use sim::SimBackend;

/// A boxed future, so that backends can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which backend a lab runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// No guests; the guest agent answers after a boot delay with the configured address.
    #[default]
    Sim,
    /// Real QEMU guests (arrives with the images issue; `start` refuses it until then).
    Qemu,
}

/// One network interface of a guest, from `netN` and `ipconfigN`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestNic {
    /// `eth0` for `net0`, ...
    pub name: String,
    /// Lower-case MAC.
    pub mac: String,
    /// Static IPv4 `addr/prefix` from `ipconfigN`, if any.
    pub ipv4: Option<String>,
    /// Static IPv6 `addr/prefix` from `ipconfigN`, if any.
    pub ipv6: Option<String>,
}

/// What a backend needs to boot a VM, taken from its config at start.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub vmid: u32,
    pub name: String,
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

/// Why an agent command has no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentError {
    /// The agent is not up yet (PVE: `QEMU guest agent is not running`).
    NotRunning,
    /// The agent answered with an error (PVE: `Agent error: ...`).
    Failed(String),
}

/// A place guests run.
pub trait Backend: Send + Sync + 'static {
    fn kind(&self) -> BackendKind;
    /// Boots the guest; returns when the VM is running (not when its agent answers).
    fn power_on(&self, spec: GuestSpec) -> BoxFuture<'_, Result<(), String>>;
    /// Powers the guest off at once.
    fn power_off(&self, vmid: u32) -> BoxFuture<'_, ()>;
    /// Runs one guest-agent command; the value is what PVE puts under `result`.
    fn agent(&self, vmid: u32, command: AgentCommand) -> BoxFuture<'_, Result<Value, AgentError>>;
}
