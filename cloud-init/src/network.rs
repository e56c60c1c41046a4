//! `network-config` (version 2): one static NIC.
//!
//! Two choices here come from running cloud-init 22.4 (Debian 12) through
//! `cloud-init devel net-convert` to its ENI, networkd and netplan renderers:
//!
//! - Gateways are `gateway4`/`gateway6`. A v2 route `to: default` is refused
//!   by the ENI and networkd renderers, and `to: ::/0` is rendered as `::/64`
//!   by ENI; the `gateway*` keys render correctly everywhere (netplan calls
//!   them deprecated but still applies them).
//! - The interface is `eth0`, matched by MAC and renamed to `eth0` with
//!   `set-name`, as Proxmox's own generated config does: the ENI renderer
//!   writes the config under the entry's name, so the name must exist.
//!   Without a known MAC (a preview before the VM exists) the entry matches
//!   `name: e*`, which netplan applies to the first Ethernet NIC but ENI and
//!   networkd apply to `eth0` only; [`NetworkConfig::matched_by_mac`] says
//!   which one was rendered.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kiln_inventory::Inventory;
use kiln_inventory::model::Node;
use kiln_inventory::values::MacAddr;
use serde::{Deserialize, Serialize};

use crate::error::RenderError;

/// The name the node's NIC has inside the guest.
pub const INTERFACE: &str = "eth0";

/// The glob used when the MAC is not known yet.
const FALLBACK_MATCH: &str = "e*";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub version: u8,
    pub ethernets: BTreeMap<String, Ethernet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ethernet {
    #[serde(rename = "match")]
    pub matching: Match,
    #[serde(rename = "set-name", default, skip_serializing_if = "Option::is_none")]
    pub set_name: Option<String>,
    pub addresses: Vec<String>,
    pub gateway4: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Nameservers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macaddress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nameservers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
}

impl NetworkConfig {
    /// The node's static addresses. `observed_mac` is the MAC Proxmox gave
    /// `net0`; the inventory's `mac` wins over it.
    pub fn for_node(
        inventory: &Inventory,
        node: &Node,
        observed_mac: Option<MacAddr>,
    ) -> Result<Self, RenderError> {
        let network = &inventory.network;
        let mut addresses = vec![format!("{}/{}", node.ip, inventory.ipv4_prefix())];
        let mut gateway6 = None;
        if let Some(ipv6) = node.ipv6 {
            let (Some(v6), Some(prefix)) = (&network.ipv6, inventory.ipv6_prefix()) else {
                return Err(RenderError::Ipv6WithoutNetwork {
                    node: node.name.to_string(),
                });
            };
            addresses.push(format!("{ipv6}/{prefix}"));
            gateway6 = v6.gateway;
        }
        let nameservers = Nameservers {
            addresses: network.dns.clone(),
            search: network
                .search_domain
                .iter()
                .map(ToString::to_string)
                .collect(),
        };
        let mac = node.mac.or(observed_mac);
        let ethernet = Ethernet {
            matching: match mac {
                Some(mac) => Match {
                    macaddress: Some(mac.to_string().to_ascii_lowercase()),
                    name: None,
                },
                None => Match {
                    macaddress: None,
                    name: Some(FALLBACK_MATCH.to_owned()),
                },
            },
            set_name: mac.map(|_| INTERFACE.to_owned()),
            addresses,
            gateway4: network.ipv4.gateway,
            gateway6,
            nameservers: (!nameservers.addresses.is_empty() || !nameservers.search.is_empty())
                .then_some(nameservers),
            mtu: network.mtu,
        };
        Ok(Self {
            version: 2,
            ethernets: BTreeMap::from([(INTERFACE.to_owned(), ethernet)]),
        })
    }

    /// Whether the NIC is matched by its MAC (else by the `e*` name glob).
    pub fn matched_by_mac(&self) -> bool {
        self.ethernets
            .values()
            .all(|ethernet| ethernet.matching.macaddress.is_some())
    }

    pub fn to_yaml(&self) -> Result<String, RenderError> {
        crate::yaml::emit(self, "network-config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::inventory;

    fn eth0(config: &NetworkConfig) -> &Ethernet {
        &config.ethernets[INTERFACE]
    }

    #[test]
    fn dual_stack_nodes_get_both_prefixes_and_gateways() {
        let home = inventory("homelab-k3s.yaml");
        let config = NetworkConfig::for_node(&home, home.node("cp1").unwrap(), None).unwrap();
        let nic = eth0(&config);
        assert_eq!(nic.addresses, ["10.20.0.11/24", "fd00:20::11/64"]);
        assert_eq!(nic.gateway4, Ipv4Addr::new(10, 20, 0, 1));
        assert_eq!(nic.gateway6, Some("fd00:20::1".parse().unwrap()));
        let dns = nic.nameservers.as_ref().unwrap();
        assert_eq!(dns.addresses.len(), 2);
        assert_eq!(dns.search, ["home.arpa"]);
    }

    #[test]
    fn ipv4_only_nodes_have_no_ipv6_and_no_empty_dns_block() {
        let tiny = inventory("minimal.yaml");
        let config = NetworkConfig::for_node(&tiny, tiny.node("box").unwrap(), None).unwrap();
        let nic = eth0(&config);
        assert_eq!(nic.addresses, ["192.168.1.50/24"]);
        assert_eq!(nic.gateway6, None);
        assert_eq!(nic.nameservers, None);
    }

    #[test]
    fn the_inventory_mac_wins_over_the_observed_one_and_names_the_nic() {
        let home = inventory("homelab-k3s.yaml");
        let observed: MacAddr = "BC:24:11:AA:BB:CC".parse().unwrap();
        let with_observed =
            NetworkConfig::for_node(&home, home.node("cp2").unwrap(), Some(observed)).unwrap();
        assert!(with_observed.matched_by_mac());
        assert_eq!(
            eth0(&with_observed).matching.macaddress.as_deref(),
            Some("bc:24:11:aa:bb:cc")
        );
        assert_eq!(eth0(&with_observed).set_name.as_deref(), Some("eth0"));
        let nuc = home.node("nuc1").unwrap();
        let fixed = NetworkConfig::for_node(&home, nuc, Some(observed)).unwrap();
        assert_eq!(
            eth0(&fixed).matching.macaddress.as_deref(),
            Some("1c:69:7a:0a:0b:0c")
        );
    }

    #[test]
    fn without_a_mac_the_first_ethernet_name_is_matched() {
        let lab = inventory("lab.yaml");
        let config = NetworkConfig::for_node(&lab, lab.node("lab1").unwrap(), None).unwrap();
        assert!(!config.matched_by_mac());
        assert_eq!(eth0(&config).matching.name.as_deref(), Some("e*"));
        assert_eq!(eth0(&config).set_name, None);
    }

    #[test]
    fn yaml_round_trips() {
        let home = inventory("homelab-k3s.yaml");
        let config = NetworkConfig::for_node(&home, home.node("cp3").unwrap(), None).unwrap();
        let back: NetworkConfig = serde_saphyr::from_str(&config.to_yaml().unwrap()).unwrap();
        assert_eq!(back, config);
    }
}
