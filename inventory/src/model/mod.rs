//! The inventory's types: what a user writes, field by field.
//!
//! Every struct denies unknown fields and derives its JSON Schema from the
//! same definition, so the schema, the parser and the docs cannot drift.

mod cluster;
mod images;
mod integrations;
mod network;
mod nodes;
mod profiles;
mod proxmox;
mod services;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cluster::{Cluster, Distribution};
pub use images::{GoldenImage, GoldenRecipe, Image, TalosImage, Template};
pub use integrations::{Flux, Gitops, Iscsi, Nfs, Storage, TrueNas};
pub use network::{Ipv4Network, Ipv6Network, Network};
pub use nodes::{BareMetal, Disk, Node, NodeDefaults, Power, PowerKind, Role};
pub use profiles::Profile;
pub use proxmox::{Limits, Proxmox, ProxmoxAuth, Tls};
pub use services::{
    Agent, AgentChecks, CommandCheck, SecretBackend, Secrets, Ssh, Vault, VaultAuth,
    VaultAuthMethod,
};

use crate::values::Label;

/// One cluster: everything kiln needs to build it, and nothing secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "kiln inventory")]
pub struct Inventory {
    pub cluster: Cluster,
    /// The Proxmox VE cluster the VMs run on. Not needed when every node is bare metal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox: Option<Proxmox>,
    pub network: Network,
    /// Named images that templates are made from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<Label, Image>,
    /// Named VM templates on Proxmox that nodes are cloned from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<Label, Template>,
    /// Values every VM node gets unless it says otherwise.
    #[serde(default, skip_serializing_if = "NodeDefaults::is_empty")]
    pub defaults: NodeDefaults,
    pub nodes: Vec<Node>,
    /// How kiln logs in to nodes. Without it, a node's pipeline ends when Proxmox reports its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
    /// Where kiln keeps the secrets it reads and generates.
    #[serde(default, skip_serializing_if = "Secrets::is_default")]
    pub secrets: Secrets,
    /// The per-host health agent and where it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// Network storage (TrueNAS) the cluster mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// The Git repository Flux applies the cluster's apps from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<Gitops>,
    /// Named overlays that make an ephemeral copy of the cluster (e.g. `nightly`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<Label, Profile>,
}
