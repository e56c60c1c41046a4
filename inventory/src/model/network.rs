use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Cidr4, Cidr6, DomainName};

/// The one L2 network the cluster's VMs are attached to. Addresses are static.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The Proxmox bridge VM NICs are attached to.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// An 802.1Q VLAN tag for the VM NICs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    pub ipv4: Ipv4Network,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Network>,
    /// DNS servers the nodes use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// The DNS search domain of the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_domain: Option<DomainName>,
    /// A virtual IP for the Kubernetes API (kube-vip / Talos VIP), inside the IPv4 network and used by no node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 576, max = 9216))]
    pub mtu: Option<u16>,
}

fn default_bridge() -> String {
    "vmbr0".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ipv4Network {
    /// The network, e.g. 10.0.0.0/24.
    pub cidr: Cidr4,
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ipv6Network {
    /// The network, e.g. fd00:10::/64.
    pub cidr: Cidr6,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv6Addr>,
}
