use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Ipv4Range, Label, VmidRange};

/// An overlay that makes an ephemeral copy of the cluster's VM nodes with
/// other names, VMIDs and addresses (bare-metal nodes are not copied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The copy's cluster name (its VMs are tagged `kiln-<cluster_name>`). Default: `<cluster>-<profile>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<Label>,
    /// Prefixed to every node name. Default: `<profile>-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// VMIDs the copy's VMs take, in node order.
    pub vmids: VmidRange,
    /// IPv4 addresses the copy's nodes take, in node order.
    pub ips: Ipv4Range,
    /// The copy's VIP, when the cluster has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<Ipv4Addr>,
    /// Which VM nodes to copy. Default: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<Label>>,
}
