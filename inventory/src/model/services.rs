use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{EnvOr, Fingerprint, HttpUrl, Interval, SecretRef};

/// How kiln logs in to nodes over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// The user cloud-init creates on VMs, with sudo.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// A reference to the private key. Default: a key kiln generates once and keeps in its store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SecretRef>,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
}

fn default_ssh_user() -> String {
    "kiln".to_owned()
}

fn default_ssh_port() -> u16 {
    22
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// `file`: an encrypted file in kiln's state dir (default). `vault`: HashiCorp Vault or OpenBao.
    #[serde(default)]
    pub backend: SecretBackend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Vault>,
}

impl Secrets {
    pub(crate) fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretBackend {
    #[default]
    File,
    Vault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vault {
    /// The server, e.g. https://vault.lan:8200 (or env:VAR).
    pub address: EnvOr<HttpUrl>,
    /// The KV v2 mount kiln keeps its secrets in.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// A Vault Enterprise / OpenBao namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub auth: VaultAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<EnvOr<Fingerprint>>,
}

fn default_mount() -> String {
    "secret".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultAuth {
    pub method: VaultAuthMethod,
    /// `token`: a reference to the token (env: or file:).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// `approle`: a reference to the role ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<SecretRef>,
    /// `approle`: a reference to the secret ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<SecretRef>,
    /// `approle`: where the AppRole auth method is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_mount: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuthMethod {
    Token,
    Approle,
}

/// The per-host agent (`kiln-agent`) and what it checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Where agents send reports: the URL of `kiln serve`, reachable from the nodes.
    pub collector: EnvOr<HttpUrl>,
    /// The SHA-256 fingerprint agents pin when `kiln serve` presents your own certificate
    /// (`--cert`); without it they pin the cluster's certificate from the secrets store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_fingerprint: Option<EnvOr<Fingerprint>>,
    /// How often each agent reports.
    #[serde(default = "default_interval")]
    pub interval: Interval,
    #[serde(default)]
    pub checks: AgentChecks,
}

fn default_interval() -> Interval {
    Interval(std::time::Duration::from_secs(15))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentChecks {
    /// systemd units that must be active.
    #[serde(default = "default_units")]
    pub units: Vec<String>,
    /// Disk use (percent) per mount that turns a node degraded.
    #[serde(default = "default_disk_warn")]
    #[schemars(range(min = 1, max = 100))]
    pub disk_warn_percent: u8,
    /// Disk use (percent) per mount that turns a node failing.
    #[serde(default = "default_disk_fail")]
    #[schemars(range(min = 1, max = 100))]
    pub disk_fail_percent: u8,
    /// Load per CPU (the lower of the 1- and 5-minute averages) that turns a node degraded.
    #[serde(default = "default_load_warn")]
    #[schemars(range(min = 1))]
    pub load_warn_per_cpu: u8,
    /// Load per CPU that turns a node failing.
    #[serde(default = "default_load_fail")]
    #[schemars(range(min = 1))]
    pub load_fail_per_cpu: u8,
    /// Whether agents check that the clock is synchronized to NTP (turn it
    /// off where nodes reach no time server, like kiln's lab).
    #[serde(default = "default_clock_sync")]
    pub clock_sync: bool,
    /// `host:port` endpoints that must accept TCP connections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Mount points that must be present (NFS, iSCSI file systems).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<PathBuf>,
    /// Custom commands: exit 0 is ok, 1 is warn, anything else is fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandCheck>,
}

fn default_units() -> Vec<String> {
    vec![
        "ssh.service".to_owned(),
        "qemu-guest-agent.service".to_owned(),
    ]
}

fn default_clock_sync() -> bool {
    true
}

fn default_load_warn() -> u8 {
    2
}

fn default_load_fail() -> u8 {
    4
}

fn default_disk_warn() -> u8 {
    80
}

fn default_disk_fail() -> u8 {
    95
}

impl Default for AgentChecks {
    fn default() -> Self {
        Self {
            units: default_units(),
            disk_warn_percent: default_disk_warn(),
            disk_fail_percent: default_disk_fail(),
            load_warn_per_cpu: default_load_warn(),
            load_fail_per_cpu: default_load_fail(),
            clock_sync: default_clock_sync(),
            endpoints: Vec::new(),
            mounts: Vec::new(),
            commands: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub name: String,
    /// Run by `/bin/sh -c`.
    pub command: String,
    #[serde(default = "default_command_timeout")]
    pub timeout: Interval,
}

fn default_command_timeout() -> Interval {
    Interval(std::time::Duration::from_secs(10))
}
