use std::collections::{BTreeMap, BTreeSet};

use super::*;

const INVENTORY: &str = "
cluster: {name: home}
proxmox: {endpoint: https://pve:8006, auth: {token: env:T}, nodes: [pve1, pve2]}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
images: {deb: {golden: {recipe: debian-12}}, deb13: {golden: {recipe: debian-12}}}
templates:
  deb: {image: deb, vmids: {pve1: 9000, pve2: 9001}}
  deb13: {image: deb13, vmids: {pve1: 9010}}
defaults: {template: deb, cores: 2, memory: 2GiB, disks: [{size: 8G}]}
nodes:
  - {name: a, role: host, pve_node: pve1, ip: 10.0.0.11}
  - {name: b, role: host, pve_node: pve2, ip: 10.0.0.12, vmid: 150}
";

fn inventory(text: &str) -> kiln_inventory::Inventory {
    kiln_inventory::parse("t.yaml", text).unwrap_or_else(|error| panic!("{}", error.render(false)))
}

/// The VM kiln would have made for `wanted`, as Proxmox reports it.
fn made(wanted: &DesiredVm, vmid: u32) -> ObservedVm {
    ObservedVm {
        vmid,
        pve_node: wanted.pve_node.clone(),
        name: wanted.node.clone(),
        tags: wanted.tags.clone(),
        running: true,
        lock: None,
        template: false,
        config: Some(ObservedConfig {
            marker: Some(Marker {
                cluster: "home".into(),
                node: wanted.node.clone(),
                stage: Stage::Ready,
                fingerprint: wanted.fingerprint.clone(),
                image: wanted.image.clone(),
                template_vmid: wanted.template_vmid,
                kiln_version: "0.1.0".into(),
                run: "run".into(),
            }),
            cores: wanted.cores,
            memory_mib: wanted.memory_mib,
            disks: wanted
                .disks
                .iter()
                .map(|disk| (disk.slot.clone(), disk.size_gib * 1024 * 1024 * 1024))
                .collect::<BTreeMap<_, _>>(),
            ipconfig0: Some(format!("ip={},gw=10.0.0.1", wanted.ipv4)),
            mac: Some("BC:24:11:00:00:01".into()),
        }),
    }
}

/// The templates the inventory names, as `kiln image ensure` leaves them.
fn templates() -> Vec<ObservedVm> {
    [(9000, "pve1"), (9001, "pve2"), (9010, "pve1")]
        .into_iter()
        .map(|(vmid, pve_node)| ObservedVm {
            vmid,
            pve_node: pve_node.into(),
            name: format!("template-{vmid}"),
            tags: BTreeSet::from(["kiln".to_owned()]),
            running: false,
            lock: None,
            template: true,
            config: None,
        })
        .collect()
}

fn converged(inventory: &kiln_inventory::Inventory) -> Vec<ObservedVm> {
    desired_vms(inventory)
        .iter()
        .enumerate()
        .map(|(index, wanted)| made(wanted, wanted.vmid.unwrap_or(100 + index as u32)))
        .chain(templates())
        .collect()
}

fn actions(plan: &Plan) -> Vec<(&str, Action)> {
    plan.nodes
        .iter()
        .map(|node| (node.node.as_str(), node.action))
        .collect()
}

#[test]
fn a_proxmox_with_only_templates_gets_every_node_created() {
    let plan = plan(&inventory(INVENTORY), &templates(), &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Create), ("b", Action::Create)]
    );
    assert_eq!(plan.nodes[1].vmid, Some(150));
    assert!(plan.has_changes());
    assert!(!plan.is_destructive());
}

#[test]
fn what_kiln_made_needs_nothing() {
    let inventory = inventory(INVENTORY);
    let plan = plan(&inventory, &converged(&inventory), &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Nothing), ("b", Action::Nothing)]
    );
    assert!(!plan.has_changes());
}

#[test]
fn more_cores_and_a_bigger_disk_update_in_place() {
    let before = inventory(INVENTORY);
    let observed = converged(&before);
    let after = inventory(&INVENTORY.replace(
        "ip: 10.0.0.11}",
        "ip: 10.0.0.11, cores: 4, disks: [{size: 16G}]}",
    ));
    let plan = plan(&after, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Update), ("b", Action::Nothing)]
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = plan.nodes[0]
        .changes
        .iter()
        .map(|change| {
            (
                change.field.as_str(),
                change.old.as_deref(),
                change.new.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("cores", Some("2"), Some("4")),
            ("disk scsi0", Some("8GiB"), Some("16GiB"))
        ]
    );
}

#[test]
fn a_new_image_or_address_replaces_the_vm() {
    let before = inventory(INVENTORY);
    let observed = converged(&before);
    let after = inventory(
        &INVENTORY
            .replace("ip: 10.0.0.11}", "ip: 10.0.0.11, template: deb13}")
            .replace("ip: 10.0.0.12,", "ip: 10.0.0.22,"),
    );
    let plan = plan(&after, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Replace), ("b", Action::Replace)]
    );
    assert_eq!(plan.nodes[0].changes[0].field, "image");
    assert_eq!(plan.nodes[1].changes[0].field, "ip");
    assert!(
        plan.nodes
            .iter()
            .all(|node| node.changes.iter().all(|change| change.destructive))
    );
    assert!(plan.is_destructive());
}

#[test]
fn a_dns_change_replaces_because_cloud_init_applies_it_at_first_boot() {
    let before = inventory(INVENTORY);
    let observed = converged(&before);
    let after = inventory(&INVENTORY.replace(
        "gateway: 10.0.0.1}}",
        "gateway: 10.0.0.1}, dns: [10.0.0.2]}",
    ));
    let plan = plan(&after, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(plan.nodes[0].action, Action::Replace);
    assert_eq!(plan.nodes[0].changes[0].field, "cloud-init settings");
}

#[test]
fn a_stopped_vm_is_started_and_an_interrupted_one_replaced() {
    let inventory = inventory(INVENTORY);
    let mut observed = converged(&inventory);
    observed[0].running = false;
    if let Some(marker) = observed[1]
        .config
        .as_mut()
        .and_then(|config| config.marker.as_mut())
    {
        marker.stage = Stage::Cloned;
    }
    let plan = plan(&inventory, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Update), ("b", Action::Replace)]
    );
    assert_eq!(plan.nodes[0].changes[0].field, "power");
    assert_eq!(plan.nodes[1].changes[0].field, "provisioning");
}

#[test]
fn a_foreign_vm_with_a_node_name_stops_the_plan_and_is_named() {
    let inventory = inventory(INVENTORY);
    let foreign = ObservedVm {
        vmid: 777,
        pve_node: "pve2".into(),
        name: "a".into(),
        tags: BTreeSet::new(),
        running: true,
        lock: None,
        template: false,
        config: None,
    };
    let observed: Vec<ObservedVm> = templates().into_iter().chain([foreign]).collect();
    let errors = plan(&inventory, &observed, &PlanOptions::default()).expect_err("must refuse");
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "VM 777 on pve2 is named `a` like inventory node `a`, but it is not kiln's (no `kiln-home` tag); kiln never touches it: rename or remove that VM, or rename the node"
        ]
    );
}

#[test]
fn a_fixed_vmid_held_by_another_vm_is_an_error() {
    let inventory = inventory(INVENTORY);
    let other = ObservedVm {
        vmid: 150,
        pve_node: "pve1".into(),
        name: "router".into(),
        tags: BTreeSet::new(),
        running: true,
        lock: None,
        template: false,
        config: None,
    };
    let observed: Vec<ObservedVm> = templates().into_iter().chain([other]).collect();
    let errors = plan(&inventory, &observed, &PlanOptions::default()).expect_err("must refuse");
    assert!(
        matches!(&errors[..], [PlanError::VmidTaken { node, vmid: 150, .. }] if node == "b"),
        "{errors:?}"
    );
}

#[test]
fn shrinking_a_disk_is_refused() {
    let before = inventory(&INVENTORY.replace("disks: [{size: 8G}]", "disks: [{size: 32G}]"));
    let observed = converged(&before);
    let errors =
        plan(&inventory(INVENTORY), &observed, &PlanOptions::default()).expect_err("must refuse");
    assert!(
        errors.iter().all(|error| matches!(
            error,
            PlanError::DiskShrink {
                current_gib: 32,
                wanted_gib: 8,
                ..
            }
        )),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 2);
}

#[test]
fn orphans_are_kept_unless_pruned_and_never_with_only() {
    let full = inventory(INVENTORY);
    let observed = converged(&full);
    let smaller = inventory(&INVENTORY.replace(
        "  - {name: b, role: host, pve_node: pve2, ip: 10.0.0.12, vmid: 150}\n",
        "",
    ));
    let kept = plan(&smaller, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(kept.orphans.len(), 1);
    assert_eq!(
        (kept.orphans[0].vmid, kept.orphans[0].action),
        (150, OrphanAction::Keep)
    );
    assert!(!kept.has_changes());
    let pruned = plan(
        &smaller,
        &observed,
        &PlanOptions {
            prune: true,
            only: None,
            ..PlanOptions::default()
        },
    )
    .expect("plan");
    assert_eq!(pruned.orphans[0].action, OrphanAction::Destroy);
    assert!(pruned.is_destructive());
    let only = PlanOptions {
        prune: true,
        only: Some(BTreeSet::from(["a".to_owned()])),
        ..PlanOptions::default()
    };
    assert_eq!(
        plan(&smaller, &observed, &only).expect("plan").orphans[0].action,
        OrphanAction::Keep
    );
}

#[test]
fn only_limits_the_plan_and_checks_its_names() {
    let inventory = inventory(INVENTORY);
    let only = PlanOptions {
        prune: false,
        only: Some(BTreeSet::from(["b".to_owned()])),
        ..PlanOptions::default()
    };
    let plan_b = plan(&inventory, &templates(), &only).expect("plan");
    assert_eq!(actions(&plan_b), [("b", Action::Create)]);
    let unknown = PlanOptions {
        prune: false,
        only: Some(BTreeSet::from(["zz".to_owned()])),
        ..PlanOptions::default()
    };
    assert_eq!(
        plan(&inventory, &[], &unknown).expect_err("unknown"),
        [PlanError::UnknownNode("zz".into())]
    );
}

#[test]
fn an_unmarked_or_locked_kiln_vm_is_reported() {
    let inventory = inventory(INVENTORY);
    let mut observed = converged(&inventory);
    observed[0].config = None;
    observed[1].lock = Some("backup".into());
    let errors = plan(&inventory, &observed, &PlanOptions::default()).expect_err("must refuse");
    assert!(
        matches!(errors[0], PlanError::UnmarkedVm { vmid: 100, .. }),
        "{errors:?}"
    );
    assert!(
        matches!(&errors[1], PlanError::Locked { lock, .. } if lock == "backup"),
        "{errors:?}"
    );
}

#[test]
fn templates_are_never_nodes() {
    let inventory = inventory(INVENTORY);
    let mut named_like_a_node = converged(&inventory).remove(0);
    named_like_a_node.template = true;
    named_like_a_node.tags.clear();
    let observed: Vec<ObservedVm> = templates().into_iter().chain([named_like_a_node]).collect();
    let plan = plan(&inventory, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(
        actions(&plan),
        [("a", Action::Create), ("b", Action::Create)]
    );
}

#[test]
fn a_template_an_interrupted_ensure_left_unconverted_is_no_node() {
    let inventory = inventory(INVENTORY);
    let mut half_made = templates().remove(0);
    half_made.template = false;
    half_made.tags.extend([
        ownership_tag(inventory.cluster.name.as_str()),
        crate::templates::TEMPLATE_TAG.to_owned(),
    ]);
    half_made.config = Some(ObservedConfig::default());
    let observed: Vec<ObservedVm> = templates().into_iter().skip(1).chain([half_made]).collect();
    let errors =
        plan(&inventory, &observed, &PlanOptions::default()).expect_err("not a template yet");
    assert!(
        matches!(&errors[..], [PlanError::TemplateMissing { vmid: 9000, .. }]),
        "{errors:?}"
    );
    let destroy = destroy_plan(&inventory, &observed, None).expect("destroy plan");
    assert!(destroy.nodes.is_empty(), "{destroy:?}");
}

#[test]
fn a_missing_template_is_named_with_the_fix() {
    let errors =
        plan(&inventory(INVENTORY), &[], &PlanOptions::default()).expect_err("no templates");
    assert_eq!(
        errors[0].to_string(),
        "node `a` is cloned from template `deb` (VMID 9000 on pve1), which Proxmox does not have: run `kiln image ensure`"
    );
    assert_eq!(errors.len(), 2);
}

#[test]
fn an_untagged_clone_with_kilns_cloned_marker_is_a_left_over_to_replace() {
    let inventory = inventory(INVENTORY);
    let mut observed = converged(&inventory);
    observed[0].tags.clear();
    if let Some(marker) = observed[0]
        .config
        .as_mut()
        .and_then(|config| config.marker.as_mut())
    {
        marker.stage = Stage::Cloned;
    }
    let plan = plan(&inventory, &observed, &PlanOptions::default()).expect("plan");
    assert_eq!(plan.nodes[0].action, Action::Replace);
}

#[test]
fn an_untagged_vm_with_a_ready_marker_is_not_kiln_s_any_more() {
    let inventory = inventory(INVENTORY);
    let mut observed = converged(&inventory);
    observed[0].tags.clear();
    let errors = plan(&inventory, &observed, &PlanOptions::default()).expect_err("foreign");
    assert!(
        matches!(&errors[..], [PlanError::NameTakenByForeignVm { name, .. }] if name == "a"),
        "{errors:?}"
    );
}

#[test]
fn the_fingerprint_follows_first_boot_settings_only() {
    let base = desired_vms(&inventory(INVENTORY));
    let more_cores = desired_vms(&inventory(&INVENTORY.replace("cores: 2", "cores: 8")));
    assert_eq!(
        base[0].fingerprint, more_cores[0].fingerprint,
        "cores change in place"
    );
    let other_dns = desired_vms(&inventory(&INVENTORY.replace(
        "gateway: 10.0.0.1}}",
        "gateway: 10.0.0.1}, dns: [10.0.0.53]}",
    )));
    assert_ne!(
        base[0].fingerprint, other_dns[0].fingerprint,
        "DNS is written at first boot"
    );
    assert_eq!(base[0].fingerprint.len(), 16);
}
