//! The planner: compares what the inventory asks for with what Proxmox has,
//! and says, per node and per field, what a run would do. Pure: it reads no
//! network and changes nothing, so it is fast and fully testable.

mod desired;
mod diff;
mod marker;
mod observed;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use desired::{DesiredDisk, DesiredVm, KILN_TAG, desired_vms, ownership_tag};
pub use diff::{PlanOptions, destroy_plan, plan};
pub(crate) use marker::BlockFields;
pub use marker::{Marker, Stage};
pub use observed::{ObservedConfig, ObservedVm};

/// What a run would do. Its JSON form (`kiln plan -o json`) is documented in
/// docs/plan.md and kept stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub nodes: Vec<NodePlan>,
    /// kiln VMs of this cluster that the inventory no longer lists.
    pub orphans: Vec<Orphan>,
    /// What TrueNAS needs, when the inventory has `storage` (the planner
    /// itself reads no network: the caller asks the NAS and fills it in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StoragePlan>,
}

/// The changes TrueNAS needs, one line each (secrets masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoragePlan {
    pub changes: Vec<String>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.nodes.iter().any(|node| node.action != Action::Nothing)
            || self
                .orphans
                .iter()
                .any(|orphan| orphan.action == OrphanAction::Destroy)
            || self
                .storage
                .as_ref()
                .is_some_and(|storage| !storage.changes.is_empty())
    }

    pub fn is_destructive(&self) -> bool {
        self.nodes
            .iter()
            .any(|node| matches!(node.action, Action::Replace | Action::Destroy))
            || self
                .orphans
                .iter()
                .any(|orphan| orphan.action == OrphanAction::Destroy)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    pub node: String,
    pub action: Action,
    pub pve_node: String,
    /// The VM's VMID today (update, replace) or the one fixed in the inventory (create).
    pub vmid: Option<u32>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No VM yet: clone, configure, start.
    Create,
    /// Change the VM in place (settings, grown disks, tags, power).
    Update,
    /// Destroy the VM and create it again: what it was made from changed,
    /// or `kiln node replace` asked for it.
    Replace,
    /// Destroy the VM (`kiln destroy`, `kiln node remove`).
    Destroy,
    Nothing,
}

/// One field's change, `old → new`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// This change alone forces the VM to be replaced.
    pub destructive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orphan {
    pub node: String,
    pub vmid: u32,
    pub pve_node: String,
    pub action: OrphanAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrphanAction {
    /// Listed only: destroying needs `--prune`.
    Keep,
    Destroy,
}

/// Why no plan can be made: each names the VM and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "VM {vmid} on {pve_node} is named `{name}` like inventory node `{name}`, but it is not kiln's (no `{tag}` tag); kiln never touches it: rename or remove that VM, or rename the node"
    )]
    NameTakenByForeignVm {
        name: String,
        vmid: u32,
        pve_node: String,
        tag: String,
    },
    #[error(
        "VMID {vmid}, fixed for node `{node}`, is taken by VM `{name}` on {pve_node}, which is not this node's"
    )]
    VmidTaken {
        node: String,
        vmid: u32,
        name: String,
        pve_node: String,
    },
    #[error(
        "VM {vmid} on {pve_node} carries the `{tag}` tag but no kiln block in its description, so kiln cannot tell which node it is: remove the tag or the VM"
    )]
    UnmarkedVm {
        vmid: u32,
        pve_node: String,
        tag: String,
    },
    #[error(
        "VMs {first} and {second} both claim to be node `{node}`: remove the one that should not exist"
    )]
    DuplicateNode {
        node: String,
        first: u32,
        second: u32,
    },
    #[error(
        "node `{node}`: disk {slot} is {current_gib}GiB on Proxmox but the inventory says {wanted_gib}GiB; Proxmox cannot shrink disks: raise the size back, or replace the node"
    )]
    DiskShrink {
        node: String,
        slot: String,
        current_gib: u64,
        wanted_gib: u64,
    },
    #[error(
        "node `{node}`: disk {slot} exists on VM {vmid} but is not in the inventory; kiln does not delete disks: detach it by hand, or add it back"
    )]
    DiskRemoved {
        node: String,
        vmid: u32,
        slot: String,
    },
    #[error(
        "VM {vmid} (node `{node}`) on {pve_node} is locked ({lock}); wait for that operation to finish, or unlock it with `qm unlock {vmid}` on {pve_node}"
    )]
    Locked {
        node: String,
        vmid: u32,
        pve_node: String,
        lock: String,
    },
    #[error(
        "node `{node}` is cloned from template `{template}` (VMID {vmid} on {pve_node}), which Proxmox does not have: run `kiln image ensure`"
    )]
    TemplateMissing {
        node: String,
        template: String,
        vmid: u32,
        pve_node: String,
    },
    #[error("--only names `{0}`, which is not a VM node of the inventory")]
    UnknownNode(String),
    #[error("node `{0}` has no VM of this cluster on Proxmox")]
    NoVm(String),
}
