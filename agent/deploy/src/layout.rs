//! Where the agent's files go on a host, and the record of what kiln put
//! there (`/etc/kiln-agent/installed.json`).

use kiln_agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use serde::{Deserialize, Serialize};

pub const BINARY_PATH: &str = "/usr/local/bin/kiln-agent";
pub const UNIT_PATH: &str = "/etc/systemd/system/kiln-agent.service";
pub const MANIFEST_PATH: &str = "/etc/kiln-agent/installed.json";
pub const UNIT_NAME: &str = "kiln-agent.service";

/// The remote paths of one deploy, under the root prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub binary: String,
    pub config: String,
    pub token: String,
    pub unit: String,
    pub manifest: String,
}

impl Layout {
    /// The paths for `config` under `root` (`/` on a real host).
    pub fn new(root: &str, config: &AgentConfig) -> Result<Self, String> {
        if !root.starts_with('/') {
            return Err(format!("the root prefix {root:?} must be an absolute path"));
        }
        let token = config
            .collector
            .token_file
            .to_str()
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| {
                format!(
                    "collector.token_file {} must be an absolute UTF-8 path",
                    config.collector.token_file.display()
                )
            })?;
        let under = |path: &str| {
            format!(
                "{}/{}",
                root.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        };
        Ok(Self {
            binary: under(BINARY_PATH),
            config: under(DEFAULT_CONFIG_PATH),
            token: under(token),
            unit: under(UNIT_PATH),
            manifest: under(MANIFEST_PATH),
        })
    }

    /// The directories the files go into, each once.
    pub fn directories(&self) -> Vec<&str> {
        let mut directories: Vec<&str> = Vec::new();
        for file in [
            &self.binary,
            &self.config,
            &self.token,
            &self.unit,
            &self.manifest,
        ] {
            let directory = match file.rsplit_once('/') {
                Some(("", _)) | None => "/",
                Some((directory, _)) => directory,
            };
            if !directories.contains(&directory) {
                directories.push(directory);
            }
        }
        directories
    }
}

/// What kiln installed, by sha256 (lower-case hex) of each file's content.
/// The token's hash tells a rotated token apart without keeping the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub version: String,
    pub binary_sha256: String,
    pub config_sha256: String,
    pub unit_sha256: String,
    pub token_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token_file: &str) -> AgentConfig {
        serde_json::from_value(serde_json::json!({
            "node": "cp1",
            "cluster": "home",
            "collector": {"url": "https://10.0.0.2:8443", "fingerprint": "ab", "token_file": token_file}
        }))
        .unwrap()
    }

    #[test]
    fn paths_sit_under_the_root_prefix() {
        let layout = Layout::new("/tmp/x/", &config("/etc/kiln-agent/token")).unwrap();
        assert_eq!(layout.binary, "/tmp/x/usr/local/bin/kiln-agent");
        assert_eq!(layout.config, "/tmp/x/etc/kiln-agent/config.json");
        assert_eq!(layout.token, "/tmp/x/etc/kiln-agent/token");
        assert_eq!(layout.unit, "/tmp/x/etc/systemd/system/kiln-agent.service");
        assert_eq!(
            layout.directories(),
            [
                "/tmp/x/usr/local/bin",
                "/tmp/x/etc/kiln-agent",
                "/tmp/x/etc/systemd/system"
            ]
        );
        let real = Layout::new("/", &config("/etc/kiln-agent/token")).unwrap();
        assert_eq!(real.binary, BINARY_PATH);
        assert_eq!(real.manifest, MANIFEST_PATH);
    }

    #[test]
    fn a_relative_token_file_or_root_is_refused() {
        let error = Layout::new("/", &config("token")).unwrap_err();
        assert!(error.contains("collector.token_file token"), "{error}");
        let error = Layout::new("tmp", &config("/t")).unwrap_err();
        assert!(error.contains("must be an absolute path"), "{error}");
        assert_eq!(Layout::new("/", &config("/t")).unwrap().token, "/t");
    }
}
