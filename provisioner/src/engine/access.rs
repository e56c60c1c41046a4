//! How a run reaches into the nodes it made: logging in over SSH, and
//! deploying the agents. The context carries both; the steps that use them
//! (`host.rs`, `rollout.rs`) read them from there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_inventory::model::Ssh;
use kiln_ssh::{HostKeyPolicy, KeySource, SshTarget};
use secrecy::SecretString;

use super::health::CollectorLink;
use crate::plan::DesiredVm;
use kiln_agent_deploy::AgentBundle;

/// How kiln logs in to the nodes it made.
pub struct HostAccess {
    pub user: String,
    pub port: u16,
    pub key: KeySource,
    pub policy: HostKeyPolicy,
    pub timeouts: kiln_ssh::Timeouts,
}

impl HostAccess {
    /// Logging in as the inventory's `ssh` says, with `private_key`,
    /// checking host keys against what kiln pinned in `state_dir`.
    pub fn new(ssh: &Ssh, cluster: &str, private_key: SecretString, state_dir: &Path) -> Self {
        Self {
            user: ssh.user.clone(),
            port: ssh.port,
            key: KeySource::Secret(private_key),
            policy: HostKeyPolicy::for_cluster(state_dir, cluster),
            timeouts: kiln_ssh::Timeouts::default(),
        }
    }

    pub fn target(&self, wanted: &DesiredVm) -> SshTarget {
        SshTarget::new(wanted.node.as_str(), wanted.address(), self.user.as_str())
            .with_port(self.port)
    }
}

/// What deploying the agents needs.
pub struct AgentRollout {
    pub bundle: AgentBundle,
    pub collector: CollectorLink,
    /// The collector's token registry: deploying registers the node's token.
    pub registry: PathBuf,
    /// Each node's token, from the secrets store (the same on every rebuild).
    pub tokens: BTreeMap<String, SecretString>,
    /// The systemd unit the agent runs under.
    pub unit: String,
}
