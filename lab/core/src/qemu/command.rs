//! The QEMU command line of a machine, built the way qemu-server builds one (the subset
//! the lab supports): memory, CPUs, drives on their buses with boot order, NICs on taps,
//! the guest-agent channel, QMP, the serial console to a log file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::MachineFiles;

/// How guests are accelerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub(crate) fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

/// One machine, in QEMU's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineSpec {
    /// QEMU's `-name`.
    pub name: String,
    pub memory_mib: u64,
    pub sockets: u32,
    pub cores: u32,
    /// Adds the qemu-guest-agent virtio-serial channel.
    pub agent: bool,
    pub drives: Vec<Drive>,
    pub nics: Vec<Nic>,
}

/// One drive: its bus and index as one key (`scsi0`, `virtio1`, `sata2`, `ide3`), its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Drive {
    pub key: String,
    /// A qcow2 disk, or a raw ISO when `cdrom`.
    pub path: PathBuf,
    pub cdrom: bool,
    /// Position in the boot order, if the drive boots.
    pub boot_index: Option<u32>,
}

/// One NIC on a tap, which `Machine::start` makes and attaches to `bridge` (without one,
/// the tap is QEMU's own, linked to nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    /// QEMU's device id, e.g. `net0`.
    pub id: String,
    /// `virtio`, `e1000`, `e1000e`, `rtl8139` or `vmxnet3`.
    pub model: String,
    pub mac: String,
    pub tap: String,
    pub bridge: Option<String>,
}

/// The arguments after `qemu-system-x86_64`.
pub fn arguments(
    spec: &MachineSpec,
    accel: Accel,
    files: &MachineFiles,
) -> Result<Vec<OsString>, String> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    let vcpus = spec.sockets.max(1) * spec.cores.max(1);
    push(&["-name", &spec.name, "-machine", "pc"]);
    push(&accel.args());
    push(&["-m", &spec.memory_mib.to_string()]);
    push(&[
        "-smp",
        &format!(
            "{vcpus},sockets={},cores={},threads=1",
            spec.sockets.max(1),
            spec.cores.max(1)
        ),
    ]);
    // No default devices: above all no default user-mode NIC (no traffic off the namespace).
    push(&["-nodefaults", "-display", "none", "-monitor", "none"]);
    push(&["-serial", &format!("file:{}", display(&files.serial_log()))]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", display(&files.qmp())),
    ]);
    push(&["-pidfile", &display(&files.pid_file())]);
    if spec.agent {
        push(&[
            "-chardev",
            &format!(
                "socket,path={},server=on,wait=off,id=qga0",
                display(&files.agent())
            ),
            "-device",
            "virtio-serial,id=qga-serial",
            "-device",
            "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
        ]);
    }
    let mut scsi_controller = false;
    let mut sata_controller = false;
    for disk in &spec.drives {
        let path = &disk.path;
        let id = format!("drive-{}", disk.key);
        let (format, media) = if disk.cdrom {
            ("raw", ",media=cdrom,readonly=on")
        } else {
            ("qcow2", "")
        };
        push(&[
            "-drive",
            &format!(
                "file={},if=none,id={id},format={format}{media}",
                display(path)
            ),
        ]);
        let boot = disk
            .boot_index
            .map(|i| format!(",bootindex={}", 100 + i))
            .unwrap_or_default();
        let (bus, index) = split_key(&disk.key);
        let device = match (bus, disk.cdrom) {
            ("scsi", cdrom) => {
                if !scsi_controller {
                    push(&["-device", "virtio-scsi-pci,id=scsihw0"]);
                    scsi_controller = true;
                }
                let kind = if cdrom { "scsi-cd" } else { "scsi-hd" };
                format!(
                    "{kind},bus=scsihw0.0,channel=0,scsi-id=0,lun={index},drive={id},id={}{boot}",
                    disk.key
                )
            }
            ("virtio", _) => format!("virtio-blk-pci,drive={id},id={}{boot}", disk.key),
            ("sata", cdrom) => {
                if !sata_controller {
                    push(&["-device", "ahci,id=ahci0"]);
                    sata_controller = true;
                }
                let kind = if cdrom { "ide-cd" } else { "ide-hd" };
                format!("{kind},bus=ahci0.{index},drive={id},id={}{boot}", disk.key)
            }
            ("ide", cdrom) => {
                let kind = if cdrom { "ide-cd" } else { "ide-hd" };
                format!(
                    "{kind},bus=ide.{},unit={},drive={id},id={}{boot}",
                    index / 2,
                    index % 2,
                    disk.key
                )
            }
            _ => return Err(format!("drive '{}' is not supported by kiln-lab", disk.key)),
        };
        push(&["-device", &device]);
    }
    for nic in &spec.nics {
        let (id, tap) = (&nic.id, &nic.tap);
        let model = match nic.model.as_str() {
            "virtio" => "virtio-net-pci",
            "e1000" | "e1000e" | "rtl8139" | "vmxnet3" => nic.model.as_str(),
            other => return Err(format!("NIC model '{other}' is not supported by kiln-lab")),
        };
        push(&[
            "-netdev",
            &format!("tap,id=netdev-{id},ifname={tap},script=no,downscript=no"),
            "-device",
            &format!("{model},netdev=netdev-{id},mac={},id={id}", nic.mac),
        ]);
    }
    Ok(args)
}

fn split_key(key: &str) -> (&str, u32) {
    let bus = key.trim_end_matches(|c: char| c.is_ascii_digit());
    (bus, key[bus.len()..].parse().unwrap_or(0))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_disks_on_buses_a_tap_and_the_agent_channel() {
        let spec = MachineSpec {
            name: "vm101".into(),
            memory_mib: 1024,
            sockets: 1,
            cores: 2,
            agent: true,
            drives: vec![
                Drive {
                    key: "scsi0".into(),
                    path: PathBuf::from("/d/vm-101-disk-0.qcow2"),
                    cdrom: false,
                    boot_index: Some(0),
                },
                Drive {
                    key: "ide2".into(),
                    path: PathBuf::from("/d/vm-101-cloudinit.iso"),
                    cdrom: true,
                    boot_index: None,
                },
            ],
            nics: vec![Nic {
                id: "net0".into(),
                model: "virtio".into(),
                mac: "bc:24:11:00:00:01".into(),
                tap: "tap101i0".into(),
                bridge: Some("vmbr0".into()),
            }],
        };
        let files = MachineFiles {
            dir: PathBuf::from("/d/vms/101"),
        };
        let args = arguments(&spec, Accel::Tcg, &files).unwrap();
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = text.join(" ");
        assert!(line.contains("-name vm101 -machine pc"), "{line}");
        assert!(line.contains("-accel tcg,thread=multi -cpu max"), "{line}");
        assert!(line.contains("-smp 2,sockets=1,cores=2"), "{line}");
        assert!(line.contains("scsi-hd,bus=scsihw0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,bootindex=100"), "{line}");
        assert!(
            line.contains("ide-cd,bus=ide.1,unit=0,drive=drive-ide2,id=ide2"),
            "{line}"
        );
        assert!(
            line.contains("tap,id=netdev-net0,ifname=tap101i0,script=no,downscript=no"),
            "{line}"
        );
        assert!(
            line.contains("virtio-net-pci,netdev=netdev-net0,mac=bc:24:11:00:00:01"),
            "{line}"
        );
        assert!(line.contains("name=org.qemu.guest_agent.0"), "{line}");
        assert!(line.contains("-nodefaults"), "{line}");
    }
}
