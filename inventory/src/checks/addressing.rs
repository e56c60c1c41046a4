//! Addresses inside the network, and not its reserved ones.

use std::net::Ipv4Addr;

use super::Findings;
use crate::model::Inventory;
use crate::path;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    let network = &inventory.network;
    let cidr = network.ipv4.cidr.0;
    let gateway = network.ipv4.gateway;
    if !cidr.contains(&gateway) || gateway == cidr.network() || gateway == cidr.broadcast() {
        findings.report(
            &path!["network", "ipv4", "gateway"],
            format!("gateway `{gateway}` is not a host address of the network `{cidr}`"),
        );
    }
    for (index, node) in inventory.nodes.iter().enumerate() {
        let at = path!["nodes", index, "ip"];
        if let Some(problem) = ipv4_problem(node.ip, inventory) {
            findings.report(
                &at,
                format!("node `{}`: IP `{}` {problem}", node.name, node.ip),
            );
        }
        if let Some(ipv6) = node.ipv6 {
            let at = path!["nodes", index, "ipv6"];
            match &network.ipv6 {
                None => {
                    findings
                        .report(
                            &at,
                            format!(
                                "node `{}` has an IPv6 address but `network.ipv6` is not set",
                                node.name
                            ),
                        )
                        .help = Some("add `network.ipv6` with the network's `cidr`".to_owned());
                }
                Some(v6) if !v6.cidr.0.contains(&ipv6) => {
                    findings.report(
                        &at,
                        format!(
                            "node `{}`: IPv6 `{ipv6}` is outside `{}`",
                            node.name, v6.cidr
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }
    if let Some(v6) = &network.ipv6
        && let Some(gateway) = v6.gateway
        && !v6.cidr.0.contains(&gateway)
    {
        findings.report(
            &path!["network", "ipv6", "gateway"],
            format!("IPv6 gateway `{gateway}` is outside `{}`", v6.cidr),
        );
    }
    if let Some(vip) = network.vip {
        let at = path!["network", "vip"];
        if let Some(problem) = ipv4_problem(vip, inventory) {
            findings.report(&at, format!("VIP `{vip}` {problem}"));
        } else if let Some(owner) = inventory.nodes.iter().find(|node| node.ip == vip) {
            findings.report(
                &at,
                format!(
                    "VIP `{vip}` is node `{}`'s address: a VIP must be unused",
                    owner.name
                ),
            );
        }
    }
}

/// Why `ip` cannot be a host address on the cluster network, if it cannot.
pub(super) fn ipv4_problem(ip: Ipv4Addr, inventory: &Inventory) -> Option<String> {
    let cidr = inventory.network.ipv4.cidr.0;
    if !cidr.contains(&ip) {
        Some(format!("is outside the network `{cidr}`"))
    } else if ip == cidr.network() {
        Some(format!("is the network address of `{cidr}`"))
    } else if ip == cidr.broadcast() {
        Some(format!("is the broadcast address of `{cidr}`"))
    } else if ip == inventory.network.ipv4.gateway {
        Some("is the gateway's address".to_owned())
    } else {
        None
    }
}
