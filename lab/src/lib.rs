//! kiln-lab: a Proxmox-VE-compatible lab held to the official API schema (PVE 9.1).
//!
//! Start one in-process for a test:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_lab::LabError> {
//! let lab = kiln_lab::start(kiln_lab::LabConfig::default()).await?;
//! println!("{} {} {}", lab.endpoint, lab.fingerprint, lab.token());
//! lab.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod backend;
mod cloudinit;
mod error;
mod faults;
mod lab;
mod pve;
pub mod qemu;
mod reqlog;
mod schema;
mod server;
mod sshkeys;
mod tls;

pub use backend::{
    AgentCommand, AgentError, Backend, BackendKind, BoxFuture, GuestDisk, GuestNic, GuestSpec,
    NoVolumes, SimBackend, VolumeDone, VolumeOp, VolumeStore,
};
pub use cloudinit::NoCloud;
pub use error::LabError;
pub use faults::{FaultConfig, FaultKind, OperationFaults, StorageLockConfig};
pub use lab::{Credentials, LabConfig, RunningLab, start, start_with_listeners};
pub use qemu::{Accel, QemuOptions};
pub use reqlog::{LoggedRequest, MASK};
pub use sshkeys::ed25519_public_key;
pub use tls::fingerprint_of;
