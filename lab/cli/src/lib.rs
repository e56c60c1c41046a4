//! kiln-lab: the lab's public face — the `kiln-lab` binary (`serve`, `env`, `exec`,
//! `down`) and, as a library, the API other crates' tests start labs with.
//!
//! The library only re-exports: the PVE emulator from `kiln-lab-pve`, the TrueNAS emulator
//! from `kiln-lab-truenas` (as `kiln_lab::truenas`, its names would clash with PVE's), the
//! shared plumbing (request log, QEMU options, namespace, run record) from `kiln-lab-core`. Start one
//! in-process for a test:
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_lab::LabError> {
//! let lab = kiln_lab::start(kiln_lab::LabConfig::default()).await?;
//! println!("{} {} {}", lab.endpoint, lab.fingerprint, lab.token());
//! lab.shutdown().await;
//! # Ok(()) }
//! ```

pub use kiln_lab_core::{LabError, LoggedRequest, MASK, ed25519_public_key, fingerprint_of};
pub use kiln_lab_pve::{
    AgentCommand, AgentError, Backend, BackendKind, BoxFuture, Credentials, FaultConfig, FaultKind,
    GuestDisk, GuestNic, GuestSpec, LabConfig, NoCloud, NoVolumes, OperationFaults, RunningLab,
    SimBackend, StorageLockConfig, VolumeDone, VolumeOp, VolumeStore, start, start_with_listeners,
};
pub use qemu::{Accel, QemuOptions};

/// The TrueNAS emulator: `kiln_lab::truenas::start(TruenasConfig::default())`.
pub use kiln_lab_truenas as truenas;

/// The qemu backend and the host side of a qemu lab, at the paths they have always had.
pub mod qemu {
    pub use kiln_lab_core::qemu::{Accel, QemuOptions};
    pub use kiln_lab_core::{host, netns, record};
    pub use kiln_lab_pve::qemu::{FileVolumes, QemuBackend};
}
