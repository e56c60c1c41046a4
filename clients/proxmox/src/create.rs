//! Creating a VM from scratch (a template's base): its disks and settings
//! checked against what the PVE schema allows before PVE sees them.

use reqwest::Method;

use crate::client::ProxmoxClient;
use crate::config::{AgentOption, NetDevice, VmConfigUpdate};
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::task::TaskHandle;
use crate::vm::DISK_RE;
use crate::wire::seg;

/// A disk of a new VM (`POST /nodes/{node}/qemu`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewDisk {
    /// A new disk on `storage` filled from `source`, a volume with content
    /// `import` (`local:import/debian.qcow2`) or another VM's disk.
    Import { storage: String, source: String },
    /// An empty disk of `size_gib` GiB.
    Empty { storage: String, size_gib: u64 },
    /// The cloud-init drive PVE regenerates at every start.
    CloudInit { storage: String },
}

impl NewDisk {
    fn render(&self) -> String {
        match self {
            // `STORAGE:0,import-from=…`: the size comes from the source.
            NewDisk::Import { storage, source } => format!("{storage}:0,import-from={source}"),
            NewDisk::Empty { storage, size_gib } => format!("{storage}:{size_gib}"),
            NewDisk::CloudInit { storage } => format!("{storage}:cloudinit"),
        }
    }
}

/// A VM to create, in the keys of the PVE 9.1 schema for
/// `POST /nodes/{node}/qemu`. Unset fields are left to PVE's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateVm {
    /// 100–999999999.
    pub vmid: u32,
    pub name: Option<String>,
    pub cores: Option<u32>,
    pub memory_mib: Option<u64>,
    /// `l26` for Linux.
    pub ostype: Option<String>,
    /// `virtio-scsi-single`, `virtio-scsi-pci`, `lsi`, …
    pub scsihw: Option<String>,
    /// By slot: `scsi0`, `ide2`, `virtio0`, …
    pub disks: Vec<(String, NewDisk)>,
    /// `netN` devices by index.
    pub nets: Vec<(u8, NetDevice)>,
    /// Serial ports backed by a host socket (`serialN: socket`), 0–3.
    pub serial_sockets: Vec<u8>,
    /// `std`, `serial0`, `virtio`, …
    pub vga: Option<String>,
    pub agent: Option<AgentOption>,
    /// `boot: order=scsi0;net0`.
    pub boot_order: Vec<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub pool: Option<String>,
}

static VGA_TYPES: &[&str] = &[
    "cirrus",
    "qxl",
    "qxl2",
    "qxl3",
    "qxl4",
    "none",
    "serial0",
    "serial1",
    "serial2",
    "serial3",
    "std",
    "virtio",
    "virtio-gl",
    "vmware",
];
static SCSIHW: &[&str] = &[
    "lsi",
    "lsi53c810",
    "virtio-scsi-pci",
    "virtio-scsi-single",
    "megasas",
    "pvscsi",
];

impl CreateVm {
    /// The request parameters, or the first value the schema would refuse.
    pub fn params(&self) -> Result<Params> {
        if !(100..=999_999_999).contains(&self.vmid) {
            return Err(Error::Invalid(format!(
                "vmid {} is outside 100..=999999999",
                self.vmid
            )));
        }
        if let Some(vga) = self.vga.as_deref().filter(|v| !VGA_TYPES.contains(v)) {
            return Err(Error::Invalid(format!("vga {vga:?} is not a VGA type")));
        }
        if let Some(hw) = self.scsihw.as_deref().filter(|h| !SCSIHW.contains(h)) {
            return Err(Error::Invalid(format!(
                "scsihw {hw:?} is not a SCSI controller"
            )));
        }
        if let Some(port) = self.serial_sockets.iter().find(|port| **port > 3) {
            return Err(Error::Invalid(format!("serial{port}: index must be 0..=3")));
        }
        if let Some((slot, _)) = self
            .disks
            .iter()
            .find(|(slot, _)| !DISK_RE.as_ref().is_some_and(|r| r.is_match(slot)))
        {
            return Err(Error::Invalid(format!("{slot:?} is not a disk slot")));
        }
        // The keys `/config` also takes are validated by its builder.
        let mut config = VmConfigUpdate::new();
        if let Some(name) = &self.name {
            config = config.name(name);
        }
        if let Some(cores) = self.cores {
            config = config.cores(cores);
        }
        if let Some(mib) = self.memory_mib {
            config = config.memory_mib(mib);
        }
        for (index, net) in &self.nets {
            config = config.net(*index, net);
        }
        if let Some(agent) = self.agent {
            config = config.agent(agent);
        }
        if !self.tags.is_empty() {
            config = config.tags(&self.tags);
        }
        if let Some(description) = &self.description {
            config = config.description(description);
        }
        let mut params = config
            .params()?
            .set("vmid", self.vmid)
            .set_opt("ostype", self.ostype.as_deref())
            .set_opt("scsihw", self.scsihw.as_deref())
            .set_opt("vga", self.vga.as_deref())
            .set_opt("pool", self.pool.as_deref());
        for (slot, disk) in &self.disks {
            params = params.set(slot, disk.render());
        }
        for port in &self.serial_sockets {
            params = params.set(&format!("serial{port}"), "socket");
        }
        if !self.boot_order.is_empty() {
            params = params.set("boot", format!("order={}", self.boot_order.join(";")));
        }
        Ok(params)
    }
}

impl ProxmoxClient {
    /// `POST /nodes/{node}/qemu`: creates a VM (a `qmcreate` task). Disks
    /// with `import-from` are copied in by that task.
    pub async fn create_vm(&self, node: &str, vm: &CreateVm) -> Result<TaskHandle> {
        let params = vm.params()?;
        let storage = vm.disks.iter().find_map(|(_, disk)| match disk {
            NewDisk::Import { storage, .. } | NewDisk::Empty { storage, .. } => {
                Some(storage.as_str())
            }
            NewDisk::CloudInit { .. } => None,
        });
        self.dispatch(
            Method::POST,
            &format!("/nodes/{}/qemu", seg(node)),
            params,
            &Target::vm(node, vm.vmid),
            storage,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_like() -> CreateVm {
        CreateVm {
            vmid: 9000,
            name: Some("debian-12".into()),
            cores: Some(1),
            memory_mib: Some(1024),
            scsihw: Some("virtio-scsi-single".into()),
            disks: vec![
                (
                    "scsi0".into(),
                    NewDisk::Import {
                        storage: "local-lvm".into(),
                        source: "local:import/debian.qcow2".into(),
                    },
                ),
                (
                    "ide2".into(),
                    NewDisk::CloudInit {
                        storage: "local-lvm".into(),
                    },
                ),
            ],
            nets: vec![(0, NetDevice::virtio("vmbr0"))],
            serial_sockets: vec![0],
            vga: Some("serial0".into()),
            agent: Some(AgentOption {
                enabled: true,
                fstrim_cloned_disks: None,
            }),
            boot_order: vec!["scsi0".into()],
            tags: vec!["kiln".into(), "kiln-template".into()],
            ..CreateVm::default()
        }
    }

    #[test]
    fn create_renders_the_schema_keys() {
        let params = template_like().params().unwrap();
        assert_eq!(params.get("vmid"), Some("9000"));
        assert_eq!(
            params.get("scsi0"),
            Some("local-lvm:0,import-from=local:import/debian.qcow2")
        );
        assert_eq!(params.get("ide2"), Some("local-lvm:cloudinit"));
        assert_eq!(params.get("serial0"), Some("socket"));
        assert_eq!(params.get("vga"), Some("serial0"));
        assert_eq!(params.get("boot"), Some("order=scsi0"));
        assert_eq!(params.get("agent"), Some("1"));
        assert_eq!(params.get("net0"), Some("virtio,bridge=vmbr0"));
        assert_eq!(params.get("tags"), Some("kiln;kiln-template"));
        assert!(!params.contains("delete"));
    }

    #[test]
    fn create_refuses_what_the_schema_refuses() {
        let bad = [
            CreateVm {
                vmid: 99,
                ..template_like()
            },
            CreateVm {
                vga: Some("serial7".into()),
                ..template_like()
            },
            CreateVm {
                serial_sockets: vec![4],
                ..template_like()
            },
            CreateVm {
                name: Some("bad_name".into()),
                ..template_like()
            },
            CreateVm {
                disks: vec![(
                    "scsi31".into(),
                    NewDisk::CloudInit {
                        storage: "local-lvm".into(),
                    },
                )],
                ..template_like()
            },
        ];
        for vm in bad {
            assert!(vm.params().is_err(), "{vm:?}");
        }
    }
}
