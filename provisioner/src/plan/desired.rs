//! What the inventory asks of each VM, in Proxmox's terms.

use std::collections::BTreeSet;

use kiln_inventory::Inventory;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The tag that marks a VM as kiln's, for one cluster. kiln never modifies
/// or destroys a VM without it.
pub fn ownership_tag(cluster: &str) -> String {
    format!("kiln-{cluster}")
}

/// A tag on every VM kiln makes, whatever the cluster.
pub const KILN_TAG: &str = "kiln";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredDisk {
    /// `scsi0` is the boot disk, grown from the template's.
    pub slot: String,
    pub size_gib: u64,
    pub storage: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredVm {
    pub node: String,
    pub pve_node: String,
    /// A VMID fixed in the inventory; `None` lets kiln allocate one.
    pub vmid: Option<u32>,
    pub image: String,
    pub template: String,
    pub template_vmid: u32,
    pub cores: u32,
    pub memory_mib: u64,
    pub disks: Vec<DesiredDisk>,
    /// `10.0.0.11/24`.
    pub ipv4: String,
    pub ipv6: Option<String>,
    pub mac: Option<String>,
    pub tags: BTreeSet<String>,
    /// Changes whenever anything kiln configures on the VM changes.
    pub fingerprint: String,
}

impl DesiredVm {
    /// The node's IPv4 address without its prefix: what kiln connects to.
    pub fn address(&self) -> String {
        self.ipv4
            .split_once('/')
            .map_or(self.ipv4.as_str(), |(address, _)| address)
            .to_owned()
    }
}

/// The VM nodes of a validated inventory, in inventory order.
pub fn desired_vms(inventory: &Inventory) -> Vec<DesiredVm> {
    let cluster = inventory.cluster.name.as_str();
    let network = &inventory.network;
    inventory
        .nodes
        .iter()
        .filter_map(|node| inventory.vm_spec(node))
        .map(|spec| {
            let node = spec.node;
            let mut tags: BTreeSet<String> = spec
                .tags
                .iter()
                .map(|tag| tag.as_str().to_ascii_lowercase())
                .collect();
            tags.insert(KILN_TAG.to_owned());
            tags.insert(ownership_tag(cluster));
            let mut vm = DesiredVm {
                node: node.name.to_string(),
                pve_node: spec.pve_node.to_string(),
                vmid: node.vmid.map(|vmid| vmid.get()),
                image: spec.image.to_string(),
                template: spec.template.to_string(),
                template_vmid: spec.template_vmid.get(),
                cores: spec.cores,
                memory_mib: spec.memory.mib_ceil(),
                disks: spec
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(index, disk)| DesiredDisk {
                        slot: format!("scsi{index}"),
                        size_gib: disk.size.gib_ceil(),
                        storage: disk.storage.to_string(),
                    })
                    .collect(),
                ipv4: format!("{}/{}", node.ip, network.ipv4.cidr.0.prefix_len()),
                ipv6: node
                    .ipv6
                    .zip(network.ipv6.as_ref())
                    .map(|(ip, v6)| format!("{ip}/{}", v6.cidr.0.prefix_len())),
                mac: node.mac.map(|mac| mac.to_string()),
                tags,
                fingerprint: String::new(),
            };
            vm.fingerprint = fingerprint(&vm, inventory);
            vm
        })
        .collect()
}

/// A short hash of what cloud-init applies only at a VM's first boot: its
/// addresses, gateways, DNS, names and login user. Settings Proxmox changes
/// in place (cores, memory, disks, tags) and what the VM was cloned from are
/// compared on their own, so they stay out; and the input is spelled out
/// field by field, so a new kiln version does not change every fingerprint
/// (which would replace every VM).
fn fingerprint(vm: &DesiredVm, inventory: &Inventory) -> String {
    let network = &inventory.network;
    let text = |value: Option<String>| value.unwrap_or_default();
    let lines = [
        ("format", "1".to_owned()),
        ("node", vm.node.clone()),
        ("ipv4", vm.ipv4.clone()),
        ("ipv6", text(vm.ipv6.clone())),
        ("mac", text(vm.mac.clone())),
        ("gateway", network.ipv4.gateway.to_string()),
        (
            "gateway6",
            text(
                network
                    .ipv6
                    .as_ref()
                    .and_then(|v6| v6.gateway)
                    .map(|gateway| gateway.to_string()),
            ),
        ),
        (
            "dns",
            network
                .dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "search_domain",
            text(network.search_domain.as_ref().map(ToString::to_string)),
        ),
        (
            "domain",
            text(inventory.cluster.domain.as_ref().map(ToString::to_string)),
        ),
        (
            "ssh_user",
            text(inventory.ssh.as_ref().map(|ssh| ssh.user.clone())),
        ),
    ];
    let mut hasher = Sha256::new();
    for (key, value) in lines {
        hasher.update(format!("{key}={value}\n").as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}
