//! Desired against observed, node by node.

use std::collections::{BTreeMap, BTreeSet};

use kiln_inventory::Inventory;

use super::desired::{DesiredVm, desired_vms, ownership_tag};
use super::marker::Stage;
use super::observed::ObservedVm;
use super::{Action, Change, NodePlan, Orphan, OrphanAction, Plan, PlanError};
use crate::templates::TEMPLATE_TAG;

const GIB: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Destroy kiln VMs of this cluster that the inventory no longer lists.
    pub prune: bool,
    /// Plan only these nodes (`--only`); orphans are then left alone.
    pub only: Option<BTreeSet<String>>,
    /// Replace these nodes even when nothing changed (`kiln node replace`).
    pub replace: BTreeSet<String>,
}

/// Plans a validated inventory against what Proxmox has. Every problem that
/// blocks the plan is returned at once.
pub fn plan(
    inventory: &Inventory,
    observed: &[ObservedVm],
    options: &PlanOptions,
) -> Result<Plan, Vec<PlanError>> {
    let cluster = inventory.cluster.name.to_string();
    let tag = ownership_tag(&cluster);
    let mut errors = Vec::new();
    let all_desired = desired_vms(inventory);
    if let Some(only) = &options.only {
        for name in only {
            if !all_desired.iter().any(|vm| &vm.node == name) {
                errors.push(PlanError::UnknownNode(name.clone()));
            }
        }
    }
    let desired: Vec<&DesiredVm> = all_desired
        .iter()
        .filter(|vm| {
            options
                .only
                .as_ref()
                .is_none_or(|only| only.contains(&vm.node))
        })
        .collect();

    let guests = observed.iter().filter(|vm| !is_template(vm));
    let (ours, foreign): (Vec<&ObservedVm>, Vec<&ObservedVm>) =
        guests.partition(|vm| is_ours(vm, &cluster, &tag));
    let mut by_node: BTreeMap<&str, &ObservedVm> = BTreeMap::new();
    for vm in &ours {
        let Some(marker) = vm.config.as_ref().and_then(|config| config.marker.as_ref()) else {
            errors.push(PlanError::UnmarkedVm {
                vmid: vm.vmid,
                pve_node: vm.pve_node.clone(),
                tag: tag.clone(),
            });
            continue;
        };
        if let Some(first) = by_node.insert(marker.node.as_str(), vm) {
            errors.push(PlanError::DuplicateNode {
                node: marker.node.clone(),
                first: first.vmid,
                second: vm.vmid,
            });
        }
    }

    let mut nodes = Vec::new();
    for wanted in &desired {
        if let Some(clash) = foreign.iter().find(|vm| vm.name == wanted.node) {
            errors.push(PlanError::NameTakenByForeignVm {
                name: wanted.node.clone(),
                vmid: clash.vmid,
                pve_node: clash.pve_node.clone(),
                tag: tag.clone(),
            });
            continue;
        }
        let current = by_node.get(wanted.node.as_str()).copied();
        if let Some(vmid) = wanted.vmid
            && current.map(|vm| vm.vmid) != Some(vmid)
            && let Some(holder) = observed.iter().find(|vm| vm.vmid == vmid)
        {
            errors.push(PlanError::VmidTaken {
                node: wanted.node.clone(),
                vmid,
                name: holder.name.clone(),
                pve_node: holder.pve_node.clone(),
            });
            continue;
        }
        let needs_template = current
            .is_none_or(|vm| compare(wanted, vm).is_ok_and(|node| node.action == Action::Replace));
        let has_template = observed.iter().any(|vm| {
            vm.template && vm.vmid == wanted.template_vmid && vm.pve_node == wanted.pve_node
        });
        if needs_template && !has_template {
            errors.push(PlanError::TemplateMissing {
                node: wanted.node.clone(),
                template: wanted.template.clone(),
                vmid: wanted.template_vmid,
                pve_node: wanted.pve_node.clone(),
            });
            continue;
        }
        match current {
            None => nodes.push(create(wanted)),
            Some(vm) => match compare(wanted, vm) {
                Ok(mut node) => {
                    if options.replace.contains(&wanted.node) && node.action != Action::Replace {
                        node.action = Action::Replace;
                        node.changes =
                            vec![change("replace", None, Some("requested".into()), true)];
                    }
                    nodes.push(node);
                }
                Err(error) => errors.push(error),
            },
        }
    }

    let orphans = ours
        .iter()
        .filter_map(|vm| {
            let marker = vm.config.as_ref()?.marker.as_ref()?;
            let listed = all_desired.iter().any(|wanted| wanted.node == marker.node);
            (!listed).then(|| Orphan {
                node: marker.node.clone(),
                vmid: vm.vmid,
                pve_node: vm.pve_node.clone(),
                action: if options.prune && options.only.is_none() {
                    OrphanAction::Destroy
                } else {
                    OrphanAction::Keep
                },
            })
        })
        .collect();

    if errors.is_empty() {
        Ok(Plan {
            cluster,
            nodes,
            orphans,
            storage: None,
        })
    } else {
        Err(errors)
    }
}

/// Every VM of this cluster's that kiln made (or only those of `only`),
/// to be destroyed. VMs without this cluster's tag are never in it.
pub fn destroy_plan(
    inventory: &Inventory,
    observed: &[ObservedVm],
    only: Option<&BTreeSet<String>>,
) -> Result<Plan, Vec<PlanError>> {
    let cluster = inventory.cluster.name.to_string();
    let tag = ownership_tag(&cluster);
    let mut errors = Vec::new();
    let mut nodes = Vec::new();
    for vm in observed
        .iter()
        .filter(|vm| !is_template(vm) && vm.tags.contains(&tag))
    {
        let Some(marker) = vm.config.as_ref().and_then(|config| config.marker.as_ref()) else {
            errors.push(PlanError::UnmarkedVm {
                vmid: vm.vmid,
                pve_node: vm.pve_node.clone(),
                tag: tag.clone(),
            });
            continue;
        };
        if only.is_some_and(|only| !only.contains(&marker.node)) {
            continue;
        }
        if let Some(lock) = &vm.lock {
            errors.push(PlanError::Locked {
                node: marker.node.clone(),
                vmid: vm.vmid,
                pve_node: vm.pve_node.clone(),
                lock: lock.clone(),
            });
            continue;
        }
        nodes.push(NodePlan {
            node: marker.node.clone(),
            action: Action::Destroy,
            pve_node: vm.pve_node.clone(),
            vmid: Some(vm.vmid),
            changes: vec![change(
                "vm",
                Some(format!("VM {} on {}", vm.vmid, vm.pve_node)),
                None,
                true,
            )],
        });
    }
    for name in only.into_iter().flatten() {
        if !nodes.iter().any(|node| &node.node == name)
            && !errors
                .iter()
                .any(|error| matches!(error, PlanError::Locked { node, .. } if node == name))
        {
            errors.push(PlanError::NoVm(name.clone()));
        }
    }
    nodes.sort_by(|left, right| left.node.cmp(&right.node));
    if errors.is_empty() {
        Ok(Plan {
            cluster,
            nodes,
            orphans: Vec::new(),
            storage: None,
        })
    } else {
        Err(errors)
    }
}

/// A template `kiln image ensure` made, converted or not yet (a run
/// stopped between create and convert): never a node, whatever its tags.
fn is_template(vm: &ObservedVm) -> bool {
    vm.template || vm.tags.contains(TEMPLATE_TAG)
}

/// A VM is this cluster's when it carries the tag, or when it is a clone a
/// killed run left before tagging it: the clone call itself writes kiln's
/// marker (stage `cloned`) into the description, which no foreign VM has.
pub(crate) fn is_ours(vm: &ObservedVm, cluster: &str, tag: &str) -> bool {
    vm.tags.contains(tag)
        || vm
            .config
            .as_ref()
            .and_then(|config| config.marker.as_ref())
            .is_some_and(|marker| marker.cluster == cluster && marker.stage == Stage::Cloned)
}

fn change(field: &str, old: Option<String>, new: Option<String>, destructive: bool) -> Change {
    Change {
        field: field.to_owned(),
        old,
        new,
        destructive,
    }
}

fn create(wanted: &DesiredVm) -> NodePlan {
    let mut changes = vec![
        change("pve_node", None, Some(wanted.pve_node.clone()), false),
        change(
            "image",
            None,
            Some(format!(
                "{} (template {})",
                wanted.image, wanted.template_vmid
            )),
            false,
        ),
        change("cores", None, Some(wanted.cores.to_string()), false),
        change(
            "memory",
            None,
            Some(format!("{}MiB", wanted.memory_mib)),
            false,
        ),
        change("ip", None, Some(wanted.ipv4.clone()), false),
    ];
    changes.extend(wanted.disks.iter().map(|disk| {
        change(
            &format!("disk {}", disk.slot),
            None,
            Some(format!("{}GiB", disk.size_gib)),
            false,
        )
    }));
    NodePlan {
        node: wanted.node.clone(),
        action: Action::Create,
        pve_node: wanted.pve_node.clone(),
        vmid: wanted.vmid,
        changes,
    }
}

fn compare(wanted: &DesiredVm, vm: &ObservedVm) -> Result<NodePlan, PlanError> {
    let config = vm.config.clone().unwrap_or_default();
    let marker = config.marker.as_ref();
    if let Some(lock) = &vm.lock {
        return Err(PlanError::Locked {
            node: wanted.node.clone(),
            vmid: vm.vmid,
            pve_node: vm.pve_node.clone(),
            lock: lock.clone(),
        });
    }
    let node_plan = |action, changes| NodePlan {
        node: wanted.node.clone(),
        action,
        pve_node: vm.pve_node.clone(),
        vmid: Some(vm.vmid),
        changes,
    };

    let mut replace = Vec::new();
    if marker.is_some_and(|marker| marker.stage == Stage::Cloned) {
        replace.push(change(
            "provisioning",
            Some("interrupted after clone".into()),
            Some("complete".into()),
            true,
        ));
    }
    if vm.pve_node != wanted.pve_node {
        replace.push(change(
            "pve_node",
            Some(vm.pve_node.clone()),
            Some(wanted.pve_node.clone()),
            true,
        ));
    }
    if let Some(marker) = marker
        && (marker.image != wanted.image || marker.template_vmid != wanted.template_vmid)
    {
        replace.push(change(
            "image",
            Some(format!(
                "{} (template {})",
                marker.image, marker.template_vmid
            )),
            Some(format!(
                "{} (template {})",
                wanted.image, wanted.template_vmid
            )),
            true,
        ));
    }
    if config.ipv4() != Some(wanted.ipv4.as_str()) {
        replace.push(change(
            "ip",
            config.ipv4().map(str::to_owned),
            Some(wanted.ipv4.clone()),
            true,
        ));
    }
    if config.ipv6() != wanted.ipv6.as_deref() {
        replace.push(change(
            "ipv6",
            config.ipv6().map(str::to_owned),
            wanted.ipv6.clone(),
            true,
        ));
    }
    if let Some(mac) = &wanted.mac
        && config.mac.as_ref() != Some(mac)
    {
        replace.push(change("mac", config.mac.clone(), Some(mac.clone()), true));
    }
    if let Some(vmid) = wanted.vmid
        && vmid != vm.vmid
    {
        replace.push(change(
            "vmid",
            Some(vm.vmid.to_string()),
            Some(vmid.to_string()),
            true,
        ));
    }
    let in_place = in_place_changes(wanted, vm)?;
    let fingerprint = marker.map(|marker| marker.fingerprint.as_str());
    if replace.is_empty() && in_place.is_empty() && fingerprint != Some(wanted.fingerprint.as_str())
    {
        // Something cloud-init writes at first boot changed (DNS, gateway,
        // users): it only takes effect on a new instance.
        replace.push(change(
            "cloud-init settings",
            fingerprint.map(str::to_owned),
            Some(wanted.fingerprint.clone()),
            true,
        ));
    }
    Ok(if !replace.is_empty() {
        node_plan(Action::Replace, replace)
    } else if !in_place.is_empty() {
        node_plan(Action::Update, in_place)
    } else {
        node_plan(Action::Nothing, Vec::new())
    })
}

fn in_place_changes(wanted: &DesiredVm, vm: &ObservedVm) -> Result<Vec<Change>, PlanError> {
    let config = vm.config.clone().unwrap_or_default();
    let mut changes = Vec::new();
    if vm.name != wanted.node {
        changes.push(change(
            "name",
            Some(vm.name.clone()),
            Some(wanted.node.clone()),
            false,
        ));
    }
    if config.cores != wanted.cores {
        changes.push(change(
            "cores",
            Some(config.cores.to_string()),
            Some(wanted.cores.to_string()),
            false,
        ));
    }
    if config.memory_mib != wanted.memory_mib {
        changes.push(change(
            "memory",
            Some(format!("{}MiB", config.memory_mib)),
            Some(format!("{}MiB", wanted.memory_mib)),
            false,
        ));
    }
    for disk in &wanted.disks {
        let wanted_bytes = disk.size_gib * GIB;
        match config.disks.get(&disk.slot) {
            None => changes.push(change(
                &format!("disk {}", disk.slot),
                None,
                Some(format!("{}GiB", disk.size_gib)),
                false,
            )),
            Some(&current) if current > wanted_bytes => {
                return Err(PlanError::DiskShrink {
                    node: wanted.node.clone(),
                    slot: disk.slot.clone(),
                    current_gib: current.div_ceil(GIB),
                    wanted_gib: disk.size_gib,
                });
            }
            Some(&current) if current < wanted_bytes => changes.push(change(
                &format!("disk {}", disk.slot),
                Some(format!("{}GiB", current.div_ceil(GIB))),
                Some(format!("{}GiB", disk.size_gib)),
                false,
            )),
            Some(_) => {}
        }
    }
    let kept_boot_disk = wanted.disks.is_empty();
    if let Some(slot) = config.disks.keys().find(|slot| {
        let wanted_slot = wanted.disks.iter().any(|disk| &disk.slot == *slot);
        let template_boot_disk = kept_boot_disk && *slot == "scsi0";
        !(wanted_slot || template_boot_disk)
    }) {
        return Err(PlanError::DiskRemoved {
            node: wanted.node.clone(),
            vmid: vm.vmid,
            slot: slot.clone(),
        });
    }
    if vm.tags != wanted.tags {
        let join = |tags: &BTreeSet<String>| tags.iter().cloned().collect::<Vec<_>>().join(";");
        changes.push(change(
            "tags",
            Some(join(&vm.tags)),
            Some(join(&wanted.tags)),
            false,
        ));
    }
    if !vm.running {
        changes.push(change(
            "power",
            Some("stopped".into()),
            Some("running".into()),
            false,
        ));
    }
    Ok(changes)
}
