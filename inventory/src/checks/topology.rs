//! What runs where: distribution and roles, PVE placement, templates and
//! images, VM versus bare metal.

use super::Findings;
use crate::model::{Distribution, Inventory, Node, Role};
use crate::path;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    distribution(inventory, findings);
    for (index, node) in inventory.nodes.iter().enumerate() {
        if node.is_vm() {
            vm_node(inventory, index, node, findings);
        } else {
            bare_metal_node(index, node, findings);
        }
    }
    templates(inventory, findings);
    images(inventory, findings);
}

fn distribution(inventory: &Inventory, findings: &mut Findings<'_>) {
    let cluster = &inventory.cluster;
    let distribution = cluster.distribution;
    if inventory.nodes.is_empty() {
        findings.report(
            &path!["nodes"],
            "the cluster has no nodes: add at least one under `nodes`",
        );
    }
    if distribution.is_kubernetes() {
        if cluster.version.is_none() {
            findings.report(
                &path!["cluster", "distribution"],
                format!(
                    "distribution `{}` needs `cluster.version`",
                    distribution.as_str()
                ),
            );
        }
        let control_planes = inventory
            .nodes
            .iter()
            .filter(|node| node.role == Role::Controlplane)
            .count();
        if control_planes.is_multiple_of(2) {
            findings
                .report(
                    &path!["nodes"],
                    format!("{} needs an odd number of control planes (1, 3, 5…) for etcd quorum; found {control_planes}", distribution.as_str()),
                )
                .help = Some("with an even number, losing half of them stops the cluster; add or remove one".to_owned());
        }
    } else if cluster.version.is_some() {
        findings.report(
            &path!["cluster", "version"],
            "`cluster.version` has no meaning with distribution `none`",
        );
    }
    for (index, node) in inventory.nodes.iter().enumerate() {
        let fits = match distribution {
            Distribution::None => node.role == Role::Host,
            Distribution::K3s | Distribution::Talos => node.role != Role::Host,
        };
        if !fits {
            let expected = if distribution.is_kubernetes() {
                "`controlplane` or `worker`"
            } else {
                "`host`"
            };
            findings.report(
                &path!["nodes", index, "role"],
                format!(
                    "node `{}` has role `{}`, but distribution `{}` takes {expected}",
                    node.name,
                    node.role.as_str(),
                    distribution.as_str()
                ),
            );
        }
    }
}

fn vm_node(inventory: &Inventory, index: usize, node: &Node, findings: &mut Findings<'_>) {
    let Some(proxmox) = &inventory.proxmox else {
        findings
            .report(
                &path!["nodes", index],
                format!(
                    "node `{}` is a VM, but the inventory has no `proxmox` section",
                    node.name
                ),
            )
            .help = Some("add `proxmox`, or make the node bare metal with `baremetal`".to_owned());
        return;
    };
    let defaults = &inventory.defaults;
    let placement = node.pve_node.as_ref().or(defaults.pve_node.as_ref());
    let declared_placement = placement.filter(|pve_node| proxmox.nodes.contains(pve_node));
    let placement_paths = [
        path!["nodes", index, "pve_node"],
        path!["defaults", "pve_node"],
    ];
    match placement {
        None => {
            findings
                .report(
                    &path!["nodes", index],
                    format!("node `{}` has no `pve_node`", node.name),
                )
                .help = Some("set `pve_node` on the node or in `defaults`".to_owned());
        }
        Some(pve_node) if !proxmox.nodes.contains(pve_node) => {
            let declared: Vec<&str> = proxmox.nodes.iter().map(|name| name.as_str()).collect();
            let diagnostic = findings.report_first(
                &placement_paths,
                format!("node `{}` is placed on PVE node `{pve_node}`, which `proxmox.nodes` does not list", node.name),
            );
            diagnostic.help = Some(
                match crate::shape::did_you_mean(pve_node.as_str(), declared.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("declared PVE nodes: {}", declared.join(", ")),
                },
            );
        }
        Some(_) => {}
    }
    let template_paths = [
        path!["nodes", index, "template"],
        path!["defaults", "template"],
    ];
    match node.template.as_ref().or(defaults.template.as_ref()) {
        None => {
            findings
                .report(
                    &path!["nodes", index],
                    format!("node `{}` has no `template` to be cloned from", node.name),
                )
                .help = Some("set `template` on the node or in `defaults`".to_owned());
        }
        Some(name) => match inventory.templates.get(name) {
            None => {
                let known: Vec<&str> = inventory
                    .templates
                    .keys()
                    .map(|name| name.as_str())
                    .collect();
                let diagnostic = findings.report_first(
                    &template_paths,
                    format!("template `{name}` is not defined under `templates`"),
                );
                if let Some(suggestion) =
                    crate::shape::did_you_mean(name.as_str(), known.iter().copied())
                {
                    diagnostic.help = Some(format!("did you mean `{suggestion}`?"));
                }
            }
            Some(template) => {
                if let Some(pve_node) =
                    declared_placement.filter(|pve_node| !template.vmids.contains_key(*pve_node))
                {
                    findings
                        .report_first(
                            &template_paths,
                            format!("template `{name}` has no copy on PVE node `{pve_node}`, where node `{}` runs", node.name),
                        )
                        .help = Some(format!(
                        "Proxmox cannot clone a template on local storage to another node: add `{pve_node}: <vmid>` to `templates.{name}.vmids`"
                    ));
                }
            }
        },
    }
    if let Some((disks, at, owner)) = inherited(
        node.disks.as_ref(),
        defaults.disks.as_ref(),
        index,
        node,
        "disks",
    ) && disks.is_empty()
    {
        findings.report(
            &at,
            format!("{owner} needs at least one disk (the boot disk)"),
        );
    }
    if let Some((memory, at, owner)) = inherited(
        node.memory.as_ref(),
        defaults.memory.as_ref(),
        index,
        node,
        "memory",
    ) && memory.bytes() < crate::values::ByteSize::from_mib(256).bytes()
    {
        findings.report(
            &at,
            format!("{owner}: {memory} of memory is too little to boot; use at least 256MiB"),
        );
    }
}

/// A VM setting with `defaults` applied: the value, where it is written,
/// and whom to name (the node, or `defaults` which many nodes share).
fn inherited<'a, T>(
    own: Option<&'a T>,
    default: Option<&'a T>,
    index: usize,
    node: &Node,
    field: &str,
) -> Option<(&'a T, crate::source::Path, String)> {
    match (own, default) {
        (Some(value), _) => Some((
            value,
            path!["nodes", index, field],
            format!("node `{}`", node.name),
        )),
        (None, Some(value)) => Some((value, path!["defaults", field], "`defaults`".to_owned())),
        (None, None) => None,
    }
}

fn bare_metal_node(index: usize, node: &Node, findings: &mut Findings<'_>) {
    let vm_only = [
        ("pve_node", node.pve_node.is_some()),
        ("vmid", node.vmid.is_some()),
        ("template", node.template.is_some()),
        ("cores", node.cores.is_some()),
        ("memory", node.memory.is_some()),
        ("disks", node.disks.is_some()),
        ("tags", !node.tags.is_empty()),
    ];
    for (field, set) in vm_only {
        if set {
            findings.report(
                &path!["nodes", index, field],
                format!(
                    "node `{}` is bare metal: `{field}` only applies to VMs",
                    node.name
                ),
            );
        }
    }
    let Some(power) = node
        .baremetal
        .as_ref()
        .and_then(|baremetal| baremetal.power.as_ref())
    else {
        return;
    };
    let at = path!["nodes", index, "baremetal", "power"];
    match power.kind {
        crate::model::PowerKind::Wol if node.mac.is_none() => {
            findings.report(
                &at,
                format!("node `{}`: Wake-on-LAN needs the node's `mac`", node.name),
            );
        }
        crate::model::PowerKind::Redfish => {
            for (field, set) in [
                ("endpoint", power.endpoint.is_some()),
                ("user", power.user.is_some()),
                ("password", power.password.is_some()),
            ] {
                if !set {
                    findings.report(
                        &at,
                        format!("node `{}`: Redfish power needs `{field}`", node.name),
                    );
                }
            }
        }
        _ => {}
    }
}

fn templates(inventory: &Inventory, findings: &mut Findings<'_>) {
    let declared = inventory.proxmox.as_ref().map(|proxmox| &proxmox.nodes);
    for (name, template) in &inventory.templates {
        if !inventory.images.contains_key(&template.image) {
            findings.report(
                &path!["templates", name.to_string(), "image"],
                format!(
                    "template `{name}` uses image `{}`, which is not defined under `images`",
                    template.image
                ),
            );
        }
        if template.vmids.is_empty() {
            findings.report(
                &path!["templates", name.to_string(), "vmids"],
                format!("template `{name}` needs a VMID on at least one PVE node"),
            );
        }
        for pve_node in template.vmids.keys() {
            if declared.is_some_and(|declared| !declared.contains(pve_node)) {
                findings.report(
                    &path!["templates", name.to_string(), "vmids", pve_node.to_string()],
                    format!("template `{name}` names PVE node `{pve_node}`, which `proxmox.nodes` does not list"),
                );
            }
        }
    }
}

fn images(inventory: &Inventory, findings: &mut Findings<'_>) {
    for (name, image) in &inventory.images {
        let at = path!["images", name.to_string()];
        let sources = [
            image.url.is_some(),
            image.golden.is_some(),
            image.talos.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if sources != 1 {
            findings.report(&at, format!("image `{name}` needs exactly one of `url`, `golden` or `talos`; found {sources}"));
        }
        if image.url.is_some() && image.checksum.is_none() && image.checksum_url.is_none() {
            findings
                .report(&path!["images", name.to_string(), "url"], format!("image `{name}` has no way to be verified"))
                .help = Some("pin `checksum: sha256:<hex>`, or give `checksum_url` (the distribution's SHA256SUMS)".to_owned());
        }
        if image.url.is_none() && (image.checksum.is_some() || image.checksum_url.is_some()) {
            findings.report(
                &at,
                format!(
                    "image `{name}`: `checksum` and `checksum_url` only apply to a `url` image"
                ),
            );
        }
    }
}
