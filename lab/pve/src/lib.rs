//! kiln-lab-pve: a Proxmox-VE-compatible lab held to the official API schema (PVE 9.1).
//!
//! Every request goes through one pipeline (`server`): the schema (`schema/`, the vendored
//! `schema/pve-api-schema.json`) decides what exists and checks the parameters, `api/`
//! authenticates and shapes replies as PVE does, and `pve/` answers with PVE's behaviour
//! over its state. Guests and disk files sit behind `backend::{Backend, VolumeStore}`:
//! `sim` keeps none; `qemu` runs them with `kiln-lab-core`'s QEMU pieces.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_lab_pve::LabError> {
//! let lab = kiln_lab_pve::start(kiln_lab_pve::LabConfig::default()).await?;
//! println!("{} {} {}", lab.endpoint, lab.fingerprint, lab.token());
//! lab.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod backend;
mod cloudinit;
mod faults;
mod lab;
mod pve;
pub mod qemu;
mod schema;
mod server;
mod sshkeys;

pub use backend::{
    AgentCommand, AgentError, Backend, BackendKind, BoxFuture, GuestDisk, GuestNic, GuestSpec,
    NoVolumes, SimBackend, VolumeDone, VolumeOp, VolumeStore,
};
pub use cloudinit::NoCloud;
pub use faults::{FaultConfig, FaultKind, OperationFaults, StorageLockConfig};
pub use kiln_lab_core::{LabError, LoggedRequest};
pub use lab::{Credentials, LabConfig, RunningLab, start, start_with_listeners};
