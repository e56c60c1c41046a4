use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{DomainName, Label, Version};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The cluster's name: kiln tags its VMs `kiln-<name>`.
    pub name: Label,
    /// What runs on the nodes: plain VMs (`none`), K3s or Talos.
    #[serde(default)]
    pub distribution: Distribution,
    /// The distribution's version, e.g. v1.31.2+k3s1 or v1.8.3. Required for k3s and talos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// The Kubernetes API endpoint (host or host:port). Defaults to the VIP, else the first control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_endpoint: Option<String>,
    /// The DNS domain of the nodes; with it each node's FQDN is `<name>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainName>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Plain VMs: no Kubernetes.
    #[default]
    None,
    K3s,
    Talos,
}

impl Distribution {
    pub fn is_kubernetes(self) -> bool {
        !matches!(self, Self::None)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::K3s => "k3s",
            Self::Talos => "talos",
        }
    }
}
