//! Names, VMIDs, addresses and MACs that must be unique.

use std::collections::HashMap;
use std::hash::Hash;

use super::Findings;
use crate::model::Inventory;
use crate::path;
use crate::source::Path;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    let mut names = Seen::default();
    let mut vmids = Seen::default();
    let mut ips = Seen::default();
    let mut macs = Seen::default();
    for (name, template) in &inventory.templates {
        for (pve_node, vmid) in &template.vmids {
            let at = path!["templates", name.to_string(), "vmids", pve_node.to_string()];
            vmids.note(
                vmid.get(),
                at,
                format!("template `{name}` on `{pve_node}`"),
                "VMID",
                findings,
            );
        }
    }
    for (index, node) in inventory.nodes.iter().enumerate() {
        let owner = format!("node `{}`", node.name);
        names.note(
            node.name.clone(),
            path!["nodes", index, "name"],
            owner.clone(),
            "node name",
            findings,
        );
        if let Some(vmid) = node.vmid {
            vmids.note(
                vmid.get(),
                path!["nodes", index, "vmid"],
                owner.clone(),
                "VMID",
                findings,
            );
        }
        ips.note(
            node.ip.to_string(),
            path!["nodes", index, "ip"],
            owner.clone(),
            "IP address",
            findings,
        );
        if let Some(ipv6) = node.ipv6 {
            ips.note(
                ipv6.to_string(),
                path!["nodes", index, "ipv6"],
                owner.clone(),
                "IP address",
                findings,
            );
        }
        if let Some(mac) = node.mac {
            macs.note(
                mac,
                path!["nodes", index, "mac"],
                owner,
                "MAC address",
                findings,
            );
        }
    }
}

/// The first owner of each value, to name it when a second one appears.
struct Seen<T> {
    first: HashMap<T, (Path, String)>,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Self {
            first: HashMap::new(),
        }
    }
}

impl<T: Eq + Hash + std::fmt::Display + Clone> Seen<T> {
    fn note(&mut self, value: T, at: Path, owner: String, what: &str, findings: &mut Findings<'_>) {
        match self.first.get(&value) {
            Some((first_path, first_owner)) => {
                let first_span = findings.span(first_path);
                findings
                    .report(
                        &at,
                        format!("duplicate {what} `{value}`: {first_owner} has it already"),
                    )
                    .related
                    .push((first_span, format!("{first_owner} has it here")));
            }
            None => {
                self.first.insert(value, (at, owner));
            }
        }
    }
}
