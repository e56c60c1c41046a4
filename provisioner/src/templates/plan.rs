//! What `kiln image ensure` would do, per template and PVE node. Pure: the
//! inventory's templates, the resolved images and what Proxmox has go in,
//! a plan or every problem that blocks one comes out.

use std::collections::{BTreeMap, BTreeSet};

use kiln_inventory::Inventory;
use serde::Serialize;

use super::image::ResolvedImage;
use super::marker::TemplateMarker;
use crate::plan::ownership_tag;

/// The tag every template kiln makes carries, beside `kiln` and `kiln-<cluster>`.
pub const TEMPLATE_TAG: &str = "kiln-template";

/// One copy of a template the inventory asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredTemplate {
    pub template: String,
    pub image: String,
    pub pve_node: String,
    pub vmid: u32,
    /// Where its disk goes (`templates.<name>.storage`, else `proxmox.storage`).
    pub storage: String,
}

/// Every template copy of the inventory, by template then PVE node.
pub fn desired_templates(inventory: &Inventory) -> Vec<DesiredTemplate> {
    let default_storage = inventory
        .proxmox
        .as_ref()
        .map_or_else(|| "local-lvm".to_owned(), |p| p.storage.to_string());
    inventory
        .templates
        .iter()
        .flat_map(|(name, template)| {
            let storage = template
                .storage
                .as_ref()
                .map_or_else(|| default_storage.clone(), ToString::to_string);
            template
                .vmids
                .iter()
                .map(move |(pve_node, vmid)| DesiredTemplate {
                    template: name.to_string(),
                    image: template.image.to_string(),
                    pve_node: pve_node.to_string(),
                    vmid: vmid.get(),
                    storage: storage.clone(),
                })
        })
        .collect()
}

/// A VM Proxmox has on one of the template VMIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTemplate {
    pub vmid: u32,
    pub pve_node: String,
    pub name: String,
    pub tags: BTreeSet<String>,
    pub template: bool,
    pub lock: Option<String>,
    /// Read from the description of VMs that carry the cluster's tag.
    pub marker: Option<TemplateMarker>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateAction {
    /// Present, kiln's, made from the same image.
    Nothing,
    /// Missing: put the image on the node, create the VM, convert it.
    Create,
    /// kiln's VM from the same image that an interrupted run did not
    /// convert yet: convert it.
    Finish,
    /// Made from another image (or on another node): destroy and create
    /// again (`--replace`).
    Replace,
    /// Would be replaced, but `--replace` was not given: left alone.
    Outdated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplatePlanItem {
    pub template: String,
    pub image: String,
    pub pve_node: String,
    pub vmid: u32,
    /// Where the template's disk goes.
    pub storage: String,
    pub action: TemplateAction,
    /// The image checksum the VM on the VMID was made from, if any.
    pub current: Option<String>,
    /// The image checksum the inventory's image has.
    pub wanted: String,
    /// Where the VM to replace is now (it may sit on another node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces_on: Option<String>,
}

impl TemplatePlanItem {
    /// How progress and the summary name this copy: `debian-12@pve1`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.template, self.pve_node)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplatePlan {
    pub cluster: String,
    pub items: Vec<TemplatePlanItem>,
}

impl TemplatePlan {
    pub fn has_changes(&self) -> bool {
        self.items.iter().any(|item| {
            matches!(
                item.action,
                TemplateAction::Create | TemplateAction::Finish | TemplateAction::Replace
            )
        })
    }

    pub fn is_destructive(&self) -> bool {
        self.items
            .iter()
            .any(|item| item.action == TemplateAction::Replace)
    }
}

/// Why no plan can be made; each names the VM and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplatePlanError {
    #[error(
        "template `{template}` wants VMID {vmid} on {pve_node}, but VM {vmid} (`{name}`, on {on}) is not kiln's template of cluster `{cluster}`; kiln never touches it: pick another VMID in `templates.{template}.vmids`, or remove that VM"
    )]
    VmidTaken {
        template: String,
        pve_node: String,
        vmid: u32,
        name: String,
        on: String,
        cluster: String,
    },
    #[error(
        "VM {vmid} ({label}) on {pve_node} is locked ({lock}); wait for that operation to finish, or unlock it with `qm unlock {vmid}` on {pve_node}"
    )]
    Locked {
        label: String,
        vmid: u32,
        pve_node: String,
        lock: String,
    },
}

/// Plans every template copy. `replace` allows destroying kiln's templates
/// made from another image.
pub fn plan_templates(
    cluster: &str,
    desired: &[DesiredTemplate],
    images: &BTreeMap<String, ResolvedImage>,
    observed: &[ObservedTemplate],
    replace: bool,
) -> Result<TemplatePlan, Vec<TemplatePlanError>> {
    let tag = ownership_tag(cluster);
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for wanted in desired {
        let Some(image) = images.get(&wanted.image) else {
            continue;
        };
        let identity = image.identity();
        let item = |action, current: Option<&TemplateMarker>, replaces_on| TemplatePlanItem {
            template: wanted.template.clone(),
            image: wanted.image.clone(),
            pve_node: wanted.pve_node.clone(),
            vmid: wanted.vmid,
            storage: wanted.storage.clone(),
            action,
            current: current.map(|marker| marker.checksum.clone()),
            wanted: identity.clone(),
            replaces_on,
        };
        let Some(vm) = observed.iter().find(|vm| vm.vmid == wanted.vmid) else {
            items.push(item(TemplateAction::Create, None, None));
            continue;
        };
        let ours = vm.tags.contains(&tag)
            && vm
                .marker
                .as_ref()
                .is_some_and(|marker| marker.cluster == cluster);
        let Some(marker) = vm.marker.as_ref().filter(|_| ours) else {
            errors.push(TemplatePlanError::VmidTaken {
                template: wanted.template.clone(),
                pve_node: wanted.pve_node.clone(),
                vmid: vm.vmid,
                name: vm.name.clone(),
                on: vm.pve_node.clone(),
                cluster: cluster.to_owned(),
            });
            continue;
        };
        if let Some(lock) = &vm.lock {
            errors.push(TemplatePlanError::Locked {
                label: format!("{}@{}", wanted.template, wanted.pve_node),
                vmid: vm.vmid,
                pve_node: vm.pve_node.clone(),
                lock: lock.clone(),
            });
            continue;
        }
        let same = marker.checksum == identity
            && marker.template == wanted.template
            && vm.pve_node == wanted.pve_node;
        let action = match (same, vm.template) {
            (true, true) => TemplateAction::Nothing,
            (true, false) => TemplateAction::Finish,
            (false, _) if replace => TemplateAction::Replace,
            (false, _) => TemplateAction::Outdated,
        };
        let replaces_on = matches!(action, TemplateAction::Replace | TemplateAction::Outdated)
            .then(|| vm.pve_node.clone());
        items.push(item(action, Some(marker), replaces_on));
    }
    if errors.is_empty() {
        Ok(TemplatePlan {
            cluster: cluster.to_owned(),
            items,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::image::ImageOrigin;
    use kiln_proxmox::Checksum;

    fn desired(vmid: u32, pve_node: &str) -> DesiredTemplate {
        DesiredTemplate {
            template: "debian-12".into(),
            image: "debian-12".into(),
            pve_node: pve_node.into(),
            vmid,
            storage: "local-lvm".into(),
        }
    }

    fn images(hex: &str) -> BTreeMap<String, ResolvedImage> {
        BTreeMap::from([(
            "debian-12".to_owned(),
            ResolvedImage {
                name: "debian-12".into(),
                origin: ImageOrigin::Url {
                    url: "https://example.org/d.qcow2".into(),
                },
                checksum: Checksum::sha256(hex),
                filename: "debian-12-x.qcow2".into(),
            },
        )])
    }

    fn kiln_template(vmid: u32, pve_node: &str, hex: &str, template: bool) -> ObservedTemplate {
        ObservedTemplate {
            vmid,
            pve_node: pve_node.into(),
            name: "debian-12".into(),
            tags: ["kiln", "kiln-lab", TEMPLATE_TAG]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            template,
            lock: None,
            marker: Some(TemplateMarker {
                cluster: "lab".into(),
                template: "debian-12".into(),
                image: "debian-12".into(),
                checksum: format!("sha256:{hex}"),
                kiln_version: "0".into(),
                run: "r".into(),
            }),
        }
    }

    fn actions(plan: &TemplatePlan) -> Vec<TemplateAction> {
        plan.items.iter().map(|item| item.action).collect()
    }

    #[test]
    fn missing_is_created_and_same_is_left_alone() {
        let want = [desired(9000, "pve1"), desired(9001, "pve2")];
        let have = [kiln_template(9000, "pve1", "aa", true)];
        let plan = plan_templates("lab", &want, &images("aa"), &have, false).unwrap();
        assert_eq!(
            actions(&plan),
            [TemplateAction::Nothing, TemplateAction::Create]
        );
        assert!(plan.has_changes() && !plan.is_destructive());
    }

    #[test]
    fn another_image_is_replaced_only_when_asked() {
        let want = [desired(9000, "pve1")];
        let have = [kiln_template(9000, "pve1", "bb", true)];
        let plan = plan_templates("lab", &want, &images("aa"), &have, false).unwrap();
        assert_eq!(actions(&plan), [TemplateAction::Outdated]);
        assert!(!plan.has_changes());
        let plan = plan_templates("lab", &want, &images("aa"), &have, true).unwrap();
        assert_eq!(actions(&plan), [TemplateAction::Replace]);
        assert_eq!(plan.items[0].current.as_deref(), Some("sha256:bb"));
        assert!(plan.is_destructive());
    }

    #[test]
    fn a_copy_on_the_wrong_node_is_replaced_and_an_unconverted_one_finished() {
        let want = [desired(9000, "pve2"), desired(9001, "pve1")];
        let have = [
            kiln_template(9000, "pve1", "aa", true),
            kiln_template(9001, "pve1", "aa", false),
        ];
        let plan = plan_templates("lab", &want, &images("aa"), &have, true).unwrap();
        assert_eq!(
            actions(&plan),
            [TemplateAction::Replace, TemplateAction::Finish]
        );
        assert_eq!(plan.items[0].replaces_on.as_deref(), Some("pve1"));
    }

    #[test]
    fn foreign_or_other_cluster_vms_on_the_vmid_are_errors_naming_them() {
        let want = [desired(9000, "pve1")];
        let mut foreign = kiln_template(9000, "pve1", "aa", true);
        foreign.tags.clear();
        foreign.marker = None;
        foreign.name = "hand-made".into();
        let errors = plan_templates("lab", &want, &images("aa"), &[foreign], true).unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .contains("VM 9000 (`hand-made`, on pve1)"),
            "{}",
            errors[0]
        );
        let other_cluster = kiln_template(9000, "pve1", "aa", true);
        let errors =
            plan_templates("home", &want, &images("aa"), &[other_cluster], true).unwrap_err();
        assert!(matches!(&errors[..], [TemplatePlanError::VmidTaken { .. }]));
    }

    #[test]
    fn a_locked_template_is_an_error_naming_the_lock() {
        let want = [desired(9000, "pve1")];
        let mut locked = kiln_template(9000, "pve1", "aa", true);
        locked.lock = Some("create".into());
        let errors = plan_templates("lab", &want, &images("aa"), &[locked], false).unwrap_err();
        assert!(
            matches!(&errors[..], [TemplatePlanError::Locked { lock, .. }] if lock == "create"),
            "{errors:?}"
        );
    }
}
