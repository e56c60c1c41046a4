//! A VM node's effective settings: its own values, else `defaults`, else
//! kiln's defaults. What the planner compares with Proxmox.

use crate::model::{Disk, Inventory, Node};
use crate::values::{ByteSize, Label, StorageId, Tag, Vmid};

/// Cores a VM gets when neither the node nor `defaults` say.
pub const DEFAULT_CORES: u32 = 2;
/// Memory a VM gets when neither the node nor `defaults` say.
pub const DEFAULT_MEMORY: ByteSize = ByteSize::from_gib(2);

/// What one VM node should be, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec<'a> {
    pub node: &'a Node,
    pub pve_node: &'a Label,
    pub template: &'a Label,
    /// The template's copy on `pve_node`, which the VM is cloned from.
    pub template_vmid: Vmid,
    pub image: &'a Label,
    pub cores: u32,
    pub memory: ByteSize,
    /// The disks the inventory asks for; empty keeps the template's disk as it is.
    pub disks: Vec<EffectiveDisk>,
    pub tags: Vec<&'a Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveDisk {
    pub size: ByteSize,
    pub storage: StorageId,
}

impl Inventory {
    /// The effective settings of a VM node, or `None` for bare metal. Only
    /// call this on a validated inventory: placement and template are
    /// guaranteed there.
    pub fn vm_spec<'a>(&'a self, node: &'a Node) -> Option<VmSpec<'a>> {
        if !node.is_vm() {
            return None;
        }
        let defaults = &self.defaults;
        let proxmox = self.proxmox.as_ref()?;
        let pve_node = node.pve_node.as_ref().or(defaults.pve_node.as_ref())?;
        let template = node.template.as_ref().or(defaults.template.as_ref())?;
        let template_spec = self.templates.get(template)?;
        let disks: &[Disk] = node
            .disks
            .as_deref()
            .or(defaults.disks.as_deref())
            .unwrap_or_default();
        let mut tags: Vec<&Tag> = defaults.tags.iter().chain(&node.tags).collect();
        tags.sort();
        tags.dedup();
        Some(VmSpec {
            node,
            pve_node,
            template,
            template_vmid: *template_spec.vmids.get(pve_node)?,
            image: &template_spec.image,
            cores: node.cores.or(defaults.cores).unwrap_or(DEFAULT_CORES),
            memory: node.memory.or(defaults.memory).unwrap_or(DEFAULT_MEMORY),
            disks: disks
                .iter()
                .map(|disk| EffectiveDisk {
                    size: disk.size,
                    storage: disk
                        .storage
                        .clone()
                        .unwrap_or_else(|| proxmox.storage.clone()),
                })
                .collect(),
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    const TEXT: &str = "
cluster: {name: demo}
proxmox: {endpoint: https://pve:8006, auth: {token: env:T}, nodes: [pve1, pve2], storage: fast}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
images: {deb: {golden: {recipe: debian-12}}}
templates: {deb: {image: deb, vmids: {pve1: 9000, pve2: 9001}}}
defaults: {template: deb, pve_node: pve1, memory: 4GiB, disks: [{size: 8G}], tags: [lab]}
nodes:
  - {name: a, role: host, ip: 10.0.0.11}
  - {name: b, role: host, ip: 10.0.0.12, pve_node: pve2, cores: 6, disks: [{size: 20G, storage: slow}], tags: [big, lab]}
  - {name: c, role: host, ip: 10.0.0.13, baremetal: {}}
";

    #[test]
    fn defaults_fill_in_what_a_node_leaves_out() {
        let inventory = crate::parse("t.yaml", TEXT).expect("valid");
        let a = inventory.vm_spec(&inventory.nodes[0]).expect("vm");
        assert_eq!(a.pve_node.as_str(), "pve1");
        assert_eq!(a.template_vmid.get(), 9000);
        assert_eq!(a.cores, super::DEFAULT_CORES);
        assert_eq!(a.memory, crate::values::ByteSize::from_gib(4));
        assert_eq!(a.disks[0].storage.as_str(), "fast");
        let b = inventory.vm_spec(&inventory.nodes[1]).expect("vm");
        assert_eq!(
            (b.pve_node.as_str(), b.template_vmid.get(), b.cores),
            ("pve2", 9001, 6)
        );
        assert_eq!(b.disks[0].storage.as_str(), "slow");
        assert_eq!(
            b.tags.iter().map(|tag| tag.as_str()).collect::<Vec<_>>(),
            ["big", "lab"]
        );
        assert!(inventory.vm_spec(&inventory.nodes[2]).is_none());
    }
}
