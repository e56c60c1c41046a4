//! The agent's configuration file (JSON), written by kiln when it deploys the agent.

use std::path::{Path, PathBuf};

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
    #[serde(default)]
    pub load: LoadThresholds,
    /// Whether `system.clock` checks NTP synchronization (off where no time
    /// server is reachable, such as kiln's lab).
    #[serde(default = "default_clock_sync")]
    pub clock_sync: bool,
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

/// Load per CPU at which `system.load` warns and fails.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadThresholds {
    pub warn_per_cpu: f64,
    pub fail_per_cpu: f64,
}

impl Default for LoadThresholds {
    fn default() -> Self {
        Self {
            warn_per_cpu: 2.0,
            fail_per_cpu: 4.0,
        }
    }
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

/// Why a config file cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the agent config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// serde's message carries the line and column.
    #[error("invalid agent config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid agent config {path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

impl AgentConfig {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: AgentConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        config
            .validate()
            .map_err(|(field, reason)| ConfigError::Invalid {
                path: path.to_path_buf(),
                field,
                reason,
            })?;
        Ok(config)
    }

    /// The rules serde cannot express, as (field, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.node.trim().is_empty() {
            return Err(("node", "must not be empty".into()));
        }
        if self.cluster.trim().is_empty() {
            return Err(("cluster", "must not be empty".into()));
        }
        if !self.collector.url.starts_with("https://") {
            return Err((
                "collector.url",
                format!("{:?} must start with https://", self.collector.url),
            ));
        }
        if let Err(error) = self.collector.fingerprint.parse::<kiln_tls::Fingerprint>() {
            return Err(("collector.fingerprint", error.to_string()));
        }
        if self.interval_secs == 0 {
            return Err(("interval_secs", "must be at least 1".into()));
        }
        if self.spool_limit == 0 {
            return Err(("spool_limit", "must be at least 1".into()));
        }
        for (field, thresholds) in [("disk", self.disk), ("memory", self.memory)] {
            if thresholds.warn_percent > thresholds.fail_percent || thresholds.fail_percent > 100 {
                return Err((
                    field,
                    format!(
                        "needs warn_percent <= fail_percent <= 100, got {} and {}",
                        thresholds.warn_percent, thresholds.fail_percent
                    ),
                ));
            }
        }
        let load = self.load;
        if !(load.warn_per_cpu > 0.0 && load.warn_per_cpu <= load.fail_per_cpu) {
            return Err((
                "load",
                format!(
                    "needs 0 < warn_per_cpu <= fail_per_cpu, got {} and {}",
                    load.warn_per_cpu, load.fail_per_cpu
                ),
            ));
        }
        for command in &self.commands {
            if command.run.first().is_none_or(|program| program.is_empty()) {
                return Err((
                    "commands",
                    format!("{:?}: run needs a program", command.name),
                ));
            }
            if command.timeout_secs == 0 {
                return Err((
                    "commands",
                    format!("{:?}: timeout_secs must be at least 1", command.name),
                ));
            }
        }
        Ok(())
    }
}

fn default_clock_sync() -> bool {
    true
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

    const PIN: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_names_the_file_line_and_column_of_a_syntax_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "{\n  \"node\": \"cp1\",\n  \"cluster\": \n}");
        let error = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("line 4"), "{error}");
    }

    #[test]
    fn load_refuses_plain_http_and_a_bad_pin() {
        let dir = tempfile::tempdir().unwrap();
        let http = format!(
            r#"{{"node":"cp1","cluster":"home","collector":{{"url":"http://10.0.0.2",
                "fingerprint":"{PIN}","token_file":"/t"}}}}"#
        );
        let error = AgentConfig::load(&write(&dir, &http))
            .unwrap_err()
            .to_string();
        assert!(error.contains("collector.url"), "{error}");
        let bad_pin = http.replace("http://", "https://").replace(PIN, "AB:CD");
        let error = AgentConfig::load(&write(&dir, &bad_pin))
            .unwrap_err()
            .to_string();
        assert!(error.contains("collector.fingerprint"), "{error}");
        let good = http.replace("http://", "https://");
        assert_eq!(AgentConfig::load(&write(&dir, &good)).unwrap().node, "cp1");
    }
}
