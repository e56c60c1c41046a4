//! Running guests under QEMU: the command line, the process and its QMP socket, the guest
//! agent channel, `qemu-img` for disk files, and the KVM probe. An emulator describes a
//! machine (`MachineSpec`) in QEMU's terms; what its own API calls a VM stays with it.

mod accel;
mod agent;
mod command;
pub mod img;
mod machine;
mod qmp;

use std::path::{Path, PathBuf};

pub use accel::choose as choose_accel;
pub use agent::{AgentError, GuestAgent};
pub use command::{Accel, Drive, MachineSpec, Nic, arguments};
pub use machine::Machine;

/// Where a qemu lab keeps its files, and how it runs guests.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// The lab's data directory: machines under `vms/<id>/`, the rest as the emulator wants.
    pub data_dir: PathBuf,
    /// The network namespace the lab runs in (the process must already be inside it).
    pub namespace: String,
    /// `None`: KVM if a probe boot works, TCG otherwise.
    pub accel: Option<Accel>,
}

/// The files of one machine, under `<data dir>/vms/<id>/`: sockets, logs, pid file.
#[derive(Debug, Clone)]
pub struct MachineFiles {
    pub dir: PathBuf,
}

impl MachineFiles {
    /// The files of machine `id` of the lab in `data_dir`.
    pub fn new(data_dir: &Path, id: &str) -> Self {
        Self {
            dir: Self::all(data_dir).join(id),
        }
    }

    /// The directory holding every machine's (`kiln-lab down` looks for pid files there).
    pub fn all(data_dir: &Path) -> PathBuf {
        data_dir.join("vms")
    }

    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub fn agent(&self) -> PathBuf {
        self.dir.join("qga.sock")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
}
