//! The agent's configuration file (JSON), written by kiln when it deploys the agent.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where kiln puts the config on a host.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kiln-agent/config.json";

/// Everything `kiln-agent run` needs. Unknown fields are refused so a typo is not ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The kiln node name this host is.
    pub node: String,
    pub cluster: String,
    pub collector: CollectorConfig,
    /// Seconds between reports.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u32,
    /// The sequence number and the spool of unsent reports live here.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How many unsent reports the spool keeps; the oldest go first when it is full.
    #[serde(default = "default_spool_limit")]
    pub spool_limit: usize,
    /// systemd units that must be active, e.g. `ssh.service`, `qemu-guest-agent.service`.
    #[serde(default)]
    pub units: Vec<String>,
    /// TCP endpoints that must be reachable.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Names that must resolve through the host's resolver.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// Mount points that must be present (e.g. an NFS share).
    #[serde(default)]
    pub mounts: Vec<PathBuf>,
    #[serde(default = "default_disk_thresholds")]
    pub disk: Thresholds,
    #[serde(default = "default_memory_thresholds")]
    pub memory: Thresholds,
    /// Extra checks: a command that passes with exit status 0.
    #[serde(default)]
    pub commands: Vec<CommandCheck>,
}

/// Where and how reports go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Base URL, e.g. `https://10.0.0.2:8443`; reports go to `{url}/api/v1/reports`.
    pub url: String,
    /// SHA-256 fingerprint of the collector's certificate (the form `kiln_tls::Fingerprint`
    /// parses); the agent trusts that certificate and nothing else.
    pub fingerprint: String,
    /// A file (mode 0600) holding the bearer token.
    pub token_file: PathBuf,
}

/// A TCP endpoint that must accept a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Use in percent at which a check warns and fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub warn_percent: u8,
    pub fail_percent: u8,
}

/// A custom check: `run[0]` with arguments `run[1..]`, no shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    pub name: String,
    pub run: Vec<String>,
    #[serde(default = "default_command_timeout_secs")]
    pub timeout_secs: u32,
}

fn default_interval_secs() -> u32 {
    15
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/kiln-agent")
}

fn default_spool_limit() -> usize {
    1000
}

fn default_disk_thresholds() -> Thresholds {
    Thresholds {
        warn_percent: 85,
        fail_percent: 95,
    }
}

fn default_memory_thresholds() -> Thresholds {
    Thresholds {
        warn_percent: 90,
        fail_percent: 98,
    }
}

fn default_command_timeout_secs() -> u32 {
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let config: AgentConfig = serde_json::from_str(
            r#"{"node":"cp1","cluster":"home","collector":{"url":"https://10.0.0.2:8443",
                "fingerprint":"ab","token_file":"/etc/kiln-agent/token"}}"#,
        )
        .unwrap();
        assert_eq!(config.interval_secs, 15);
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/kiln-agent"));
        assert_eq!(config.disk.fail_percent, 95);
        assert!(config.units.is_empty());
    }

    #[test]
    fn a_typo_is_refused() {
        let error = serde_json::from_str::<AgentConfig>(
            r#"{"node":"cp1","cluster":"home","intervall_secs":5,"collector":{"url":"u",
                "fingerprint":"ab","token_file":"t"}}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("intervall_secs"), "{error}");
    }
}
