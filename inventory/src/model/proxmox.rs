use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{EnvOr, Fingerprint, HttpUrl, Label, SecretRef, StorageId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxmox {
    /// The API endpoint, e.g. https://pve1.lan:8006 (or env:VAR).
    pub endpoint: EnvOr<HttpUrl>,
    /// Other cluster members' endpoints, tried in order when the first does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_endpoints: Vec<EnvOr<HttpUrl>>,
    pub auth: ProxmoxAuth,
    /// How the API's certificate is trusted. Default: the system's roots.
    #[serde(default, skip_serializing_if = "Tls::is_default")]
    pub tls: Tls,
    /// The PVE nodes (hosts) of the Proxmox cluster that VMs may be placed on.
    pub nodes: Vec<Label>,
    /// The storage VM disks are made on.
    #[serde(default = "default_storage")]
    pub storage: StorageId,
    /// A storage with `snippets` content, for cloud-init `cicustom` files (uploaded over SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippets_storage: Option<StorageId>,
    /// A resource pool to put kiln's VMs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// How many operations kiln runs at once.
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
}

fn default_storage() -> StorageId {
    StorageId::known("local-lvm")
}

/// An API token (recommended), or a user and password for tickets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxAuth {
    /// A reference to the API token, written `user@realm!tokenid=secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// A user, e.g. kiln@pve, for ticket authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A reference to that user's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
}

/// Trust for a TLS endpoint: system roots unless a CA file or a pin is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// A PEM file with the CA that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the server's certificate (self-signed PVE and TrueNAS certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<EnvOr<Fingerprint>>,
}

impl Tls {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Operations at once on one PVE node.
    #[serde(default = "default_per_node")]
    #[schemars(range(min = 1, max = 64))]
    pub per_node: u32,
    /// Disk-allocating operations at once on one storage.
    #[serde(default = "default_per_storage")]
    #[schemars(range(min = 1, max = 64))]
    pub per_storage: u32,
}

fn default_per_node() -> u32 {
    4
}

fn default_per_storage() -> u32 {
    2
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_node: default_per_node(),
            per_storage: default_per_storage(),
        }
    }
}

impl Limits {
    fn is_default(&self) -> bool {
        self == &Self::default()
    }
}
