//! Profiles must make a copy that cannot touch the live cluster.

use std::collections::HashSet;

use super::Findings;
use super::addressing::ipv4_problem;
use crate::model::Inventory;
use crate::path;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    let base_names: HashSet<&str> = inventory
        .nodes
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    let base_vmids: Vec<u32> = inventory
        .nodes
        .iter()
        .filter_map(|node| node.vmid.map(|vmid| vmid.get()))
        .chain(
            inventory
                .templates
                .values()
                .flat_map(|template| template.vmids.values().map(|vmid| vmid.get())),
        )
        .collect();
    for (name, profile) in &inventory.profiles {
        let at = |field: &str| path!["profiles", name.to_string(), field];
        let selected = match inventory.profile_nodes(name) {
            Ok(selected) => selected,
            Err(unknown) => {
                for (position, problem) in unknown {
                    findings.report(
                        &path!["profiles", name.to_string(), "nodes", position],
                        problem,
                    );
                }
                continue;
            }
        };
        let cluster_name = inventory.profile_cluster_name(name, profile);
        match &cluster_name {
            Ok(cluster_name) if cluster_name == &inventory.cluster.name => {
                findings.report(
                    &at("cluster_name"),
                    format!("profile `{name}` has the live cluster's name `{cluster_name}`: its VMs would be taken for the live cluster's"),
                );
            }
            Ok(_) => {}
            Err(problem) => {
                findings.report(&at("cluster_name"), format!("profile `{name}`: {problem}"));
            }
        }
        let prefix = inventory.profile_prefix(name, profile);
        if prefix.is_empty() {
            findings.report(&at("name_prefix"), format!("profile `{name}` needs a non-empty `name_prefix`: node names would equal the live ones"));
        }
        for node in selected.iter().filter(|_| !prefix.is_empty()) {
            let copy = format!("{prefix}{}", node.name);
            if copy.parse::<crate::values::Label>().is_err() {
                findings.report(&at("name_prefix"), format!("profile `{name}` makes the node name `{copy}`, which is not a valid RFC 1123 label"));
            } else if base_names.contains(copy.as_str()) {
                findings.report(
                    &at("name_prefix"),
                    format!("profile `{name}` makes the node name `{copy}`, which a live node has"),
                );
            }
        }
        let needed = selected.len() as u64;
        if profile.vmids.count() < needed {
            findings.report(
                &at("vmids"),
                format!(
                    "profile `{name}` copies {needed} VMs, but its VMID range `{}` holds {}",
                    profile.vmids,
                    plural(profile.vmids.count(), "VMID")
                ),
            );
        }
        if let Some(taken) = base_vmids
            .iter()
            .find(|vmid| profile.vmids.as_range().contains(vmid))
        {
            findings.report(&at("vmids"), format!("profile `{name}`: VMID range `{}` contains VMID {taken}, which the live cluster uses", profile.vmids));
        }
        if profile.ips.count() < needed {
            findings.report(
                &at("ips"),
                format!(
                    "profile `{name}` copies {needed} VMs, but its address range `{}` holds {}",
                    profile.ips,
                    plural(profile.ips.count(), "address")
                ),
            );
        }
        for ip in [profile.ips.first, profile.ips.last] {
            if let Some(problem) = ipv4_problem(ip, inventory) {
                findings.report(&at("ips"), format!("profile `{name}`: `{ip}` {problem}"));
            }
        }
        if profile.ips.first < inventory.network.ipv4.gateway
            && inventory.network.ipv4.gateway < profile.ips.last
        {
            findings.report(
                &at("ips"),
                format!(
                    "profile `{name}`: range `{}` contains the gateway",
                    profile.ips
                ),
            );
        }
        let live_ips = inventory
            .nodes
            .iter()
            .map(|node| node.ip)
            .chain(inventory.network.vip);
        for ip in live_ips.filter(|ip| profile.ips.contains(*ip)) {
            findings.report(
                &at("ips"),
                format!(
                    "profile `{name}`: range `{}` contains `{ip}`, which the live cluster uses",
                    profile.ips
                ),
            );
        }
        match (inventory.network.vip, profile.vip) {
            (Some(_), None) if inventory.cluster.distribution.is_kubernetes() => {
                findings.report(
                    &path!["profiles", name.to_string()],
                    format!("profile `{name}` needs its own `vip`: the live cluster has one"),
                );
            }
            (_, Some(vip)) => {
                if let Some(problem) = ipv4_problem(vip, inventory) {
                    findings.report(
                        &at("vip"),
                        format!("profile `{name}`: VIP `{vip}` {problem}"),
                    );
                } else if Some(vip) == inventory.network.vip
                    || inventory.nodes.iter().any(|node| node.ip == vip)
                {
                    findings.report(
                        &at("vip"),
                        format!("profile `{name}`: VIP `{vip}` is used by the live cluster"),
                    );
                } else if profile.ips.contains(vip) {
                    findings.report(
                        &at("vip"),
                        format!("profile `{name}`: VIP `{vip}` is inside the profile's own `ips`"),
                    );
                }
            }
            _ => {}
        }
    }
}

fn plural(count: u64, noun: &str) -> String {
    match (count, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{count} {noun}es"),
        (_, false) => format!("{count} {noun}s"),
    }
}
