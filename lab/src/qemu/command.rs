//! The QEMU command line of a guest, the way qemu-server would build it for its config
//! (the subset the lab supports): memory, CPUs, drives on their buses with boot order,
//! virtio-net on a tap, the guest-agent channel, QMP, the serial console to a log file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::backend::{GuestDisk, GuestNic, GuestSpec};

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

/// The files of one running guest, under `<data dir>/vms/<vmid>/`.
#[derive(Debug, Clone)]
pub(crate) struct GuestFiles {
    pub(crate) dir: PathBuf,
}

impl GuestFiles {
    pub(crate) fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    pub(crate) fn agent(&self) -> PathBuf {
        self.dir.join("qga.sock")
    }
    pub(crate) fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    pub(crate) fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
}

/// PVE's tap name for `netN` of a VM.
pub(crate) fn tap_name(vmid: u32, nic: &GuestNic) -> String {
    let index = nic.name.trim_start_matches("eth");
    format!("tap{vmid}i{index}")
}

/// The arguments after `qemu-system-x86_64`; `disk_path` resolves a volume to its file.
pub(crate) fn arguments(
    spec: &GuestSpec,
    accel: Accel,
    files: &GuestFiles,
    disk_path: &dyn Fn(&GuestDisk) -> Option<PathBuf>,
) -> Result<Vec<OsString>, String> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
    let vcpus = spec.sockets.max(1) * spec.cores.max(1);
    push(&["-name", &format!("vm{}", spec.vmid), "-machine", "pc"]);
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
    for disk in &spec.disks {
        let path =
            disk_path(disk).ok_or_else(|| format!("unable to parse volume ID '{}'", disk.volid))?;
        if !path.exists() {
            return Err(format!("volume '{}' does not exist", disk.volid));
        }
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
                display(&path)
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
        let tap = tap_name(spec.vmid, nic);
        let model = match nic.model.as_str() {
            "virtio" => "virtio-net-pci",
            "e1000" | "e1000e" | "rtl8139" | "vmxnet3" => nic.model.as_str(),
            other => return Err(format!("NIC model '{other}' is not supported by kiln-lab")),
        };
        let id = nic.name.replace("eth", "net");
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
    use crate::cloudinit::NoCloud;

    #[test]
    fn command_line_has_disks_on_buses_a_tap_and_the_agent_channel() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d.qcow2");
        std::fs::write(&disk, b"").unwrap();
        let spec = GuestSpec {
            vmid: 101,
            node: "pve1".into(),
            name: "web1".into(),
            memory_mib: 1024,
            sockets: 1,
            cores: 2,
            agent: true,
            disks: vec![
                GuestDisk {
                    key: "scsi0".into(),
                    volid: "local-lvm:vm-101-disk-0".into(),
                    cdrom: false,
                    cloudinit: false,
                    boot_index: Some(0),
                },
                GuestDisk {
                    key: "ide2".into(),
                    volid: "local-lvm:vm-101-cloudinit".into(),
                    cdrom: true,
                    cloudinit: true,
                    boot_index: None,
                },
            ],
            nics: vec![GuestNic {
                name: "eth0".into(),
                mac: "bc:24:11:00:00:01".into(),
                model: "virtio".into(),
                bridge: Some("vmbr0".into()),
                ipv4: None,
                ipv6: None,
            }],
            nocloud: NoCloud::default(),
            host_key: String::new(),
        };
        let files = GuestFiles {
            dir: dir.path().to_path_buf(),
        };
        let args = arguments(&spec, Accel::Tcg, &files, &|_| Some(disk.clone())).unwrap();
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = text.join(" ");
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
