use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{ByteSize, HttpUrl, Label, MacAddr, SecretRef, StorageId, Tag, Vmid};

/// One machine of the cluster: a VM on Proxmox, or bare metal (`baremetal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The node's hostname and its VM's name.
    pub name: Label,
    pub role: Role,
    /// The node's IPv4 address on the cluster network.
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The NIC's MAC address. Default: chosen by Proxmox (VMs) or as found (bare metal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// VMs: the PVE node it runs on. Default: `defaults.pve_node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pve_node: Option<Label>,
    /// VMs: a fixed VMID. Default: allocated by kiln.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<Vmid>,
    /// VMs: the template it is cloned from. Default: `defaults.template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// VMs: disks; the first is the boot disk, grown from the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    /// Extra Proxmox tags (kiln adds its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// This node is a physical machine, not a VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baremetal: Option<BareMetal>,
}

impl Node {
    pub fn is_vm(&self) -> bool {
        self.baremetal.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A Kubernetes control-plane node.
    Controlplane,
    /// A Kubernetes worker node.
    Worker,
    /// A plain host (distribution `none`): no Kubernetes role.
    Host,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Controlplane => "controlplane",
            Self::Worker => "worker",
            Self::Host => "host",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub size: ByteSize,
    /// Default: `proxmox.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageId>,
}

/// Values VM nodes take unless they set their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pve_node: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 512))]
    pub cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl NodeDefaults {
    pub(crate) fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A physical machine kiln reaches over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BareMetal {
    /// Where kiln reaches it over SSH (host name or address). Default: the node's `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The SSH user kiln logs in as. Default: `ssh.user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// How kiln powers it on and off. Default: manual (kiln asks you to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Power {
    pub kind: PowerKind,
    /// Redfish/IPMI: the BMC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<HttpUrl>,
    /// Redfish/IPMI: the BMC user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Redfish/IPMI: a reference to the BMC password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PowerKind {
    /// kiln asks an operator to power the machine.
    Manual,
    /// Wake-on-LAN to the node's `mac`; power-off over SSH.
    Wol,
    /// A Redfish BMC.
    Redfish,
}
