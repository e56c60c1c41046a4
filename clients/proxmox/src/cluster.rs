//! Cluster-wide reads: version, nodes, the one-call VM inventory.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::de;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::wire::endpoint;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    pub version: String,
    /// `major.minor`, used to gate version-specific behaviour.
    pub release: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub repoid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub console: Option<String>,
}

impl Version {
    /// `(major, minor)` from `release` (or `version` when `release` is odd).
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let parse = |s: &str| {
            let mut it = s.split(['.', '-']);
            let major = it.next()?.parse().ok()?;
            let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
            Some((major, minor))
        };
        parse(&self.release).or_else(|| parse(&self.version))
    }

    /// PVE 8.0 made `PUT /resize` return a task.
    pub fn resize_is_async(&self) -> bool {
        self.major_minor().is_some_and(|v| v >= (8, 0))
    }

    /// PVE 9 agent endpoints need `VM.GuestAgent.*` instead of `VM.Monitor`.
    pub fn agent_needs_guest_agent_privs(&self) -> bool {
        self.major_minor().is_some_and(|v| v >= (9, 0))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxcpu: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub ssl_fingerprint: Option<String>,
}

impl NodeInfo {
    pub fn is_online(&self) -> bool {
        self.status.as_deref() == Some("online")
    }
}

/// One entry of `/cluster/resources?type=vm`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmResource {
    /// `qemu/100`
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// `qemu` or `lxc`
    #[serde(rename = "type", default, deserialize_with = "de::opt_string")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "de::vmid")]
    pub vmid: u32,
    #[serde(default)]
    pub node: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de::bool01")]
    pub template: bool,
    #[serde(default, deserialize_with = "de::tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pool: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub hastate: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
}

impl VmResource {
    pub fn is_qemu(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == "qemu")
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }
}

/// Keeps the qemu/lxc entries of a resources list. Node and storage
/// entries (present when a server ignores `type=vm`) are skipped, but a
/// guest entry that does not parse is an error, not silently dropped.
pub fn guests_only(items: Vec<Value>) -> std::result::Result<Vec<VmResource>, String> {
    items
        .into_iter()
        .filter(|item| {
            matches!(
                item.get("type").and_then(Value::as_str),
                Some("qemu" | "lxc") | None
            )
        })
        .map(|item| serde_json::from_value(item).map_err(|e| e.to_string()))
        .collect()
}

impl ProxmoxClient {
    /// `GET /version`.
    pub async fn version(&self) -> Result<Version> {
        self.get("/version", Params::new(), &Target::default())
            .await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.get("/nodes", Params::new(), &Target::default()).await
    }

    /// Every guest in the cluster with node, status, tags and lock, in one
    /// call (`GET /cluster/resources?type=vm`). LXC entries are included;
    /// filter with [`VmResource::is_qemu`].
    pub async fn cluster_vms(&self) -> Result<Vec<VmResource>> {
        let path = "/cluster/resources";
        let items: Vec<Value> = self
            .get(path, Params::new().set("type", "vm"), &Target::default())
            .await?;
        guests_only(items).map_err(|reason| Error::Decode {
            endpoint: endpoint(&Method::GET, path),
            target: Target::default(),
            reason,
        })
    }

    /// Finds the node a VMID lives on.
    pub async fn locate_vm(&self, vmid: u32) -> Result<Option<VmResource>> {
        Ok(self
            .cluster_vms()
            .await?
            .into_iter()
            .find(|v| v.vmid == vmid))
    }
}
