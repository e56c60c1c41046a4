//! What every step of a run shares: the client, the inventory, the run's
//! identity, what kiln resolved before starting, and the time limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_cloud_init::SshPublicKey;
use kiln_inventory::Inventory;
use uuid::Uuid;

use super::access::{AgentRollout, HostAccess};
use super::storage::StorageRun;
use kiln_proxmox::ProxmoxClient;
use kiln_ssh::Session;

/// How long each kind of step may take before it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub clone: Duration,
    pub configure: Duration,
    pub resize: Duration,
    pub power: Duration,
    pub destroy: Duration,
    /// From start until the guest agent reports the node's address.
    pub boot: Duration,
    /// From the address until kiln has pinned the host key and logged in.
    pub ssh: Duration,
    /// Deploying the agent over SSH.
    pub deploy: Duration,
    /// From the agent's deploy until the collector calls the node healthy.
    pub healthy: Duration,
    /// Each storage step: preparing TrueNAS, a node's initiator name, a
    /// node's storage check.
    pub storage: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            clone: Duration::from_secs(600),
            configure: Duration::from_secs(120),
            resize: Duration::from_secs(300),
            power: Duration::from_secs(180),
            destroy: Duration::from_secs(300),
            boot: Duration::from_secs(600),
            ssh: Duration::from_secs(300),
            deploy: Duration::from_secs(300),
            healthy: Duration::from_secs(180),
            storage: Duration::from_secs(600),
        }
    }
}

pub struct Context {
    pub client: ProxmoxClient,
    pub inventory: Arc<Inventory>,
    pub run: Uuid,
    /// The keys cloud-init installs for the SSH user (the cluster's key).
    pub authorized_keys: Vec<SshPublicKey>,
    pub timeouts: Timeouts,
    /// How to log in to nodes; `None` when the inventory has no `ssh`
    /// section (pipelines then end at the guest agent's address).
    pub hosts: Option<Arc<HostAccess>>,
    /// How to deploy the agents; `None` when the inventory has no `agent`
    /// section (pipelines then end once SSH works).
    pub agents: Option<Arc<AgentRollout>>,
    /// TrueNAS and the nodes' side of it; `None` without `storage`.
    pub storage: Option<Arc<StorageRun>>,
}

/// What one node's steps hand on to the next: the VM, known once it was
/// cloned, and the SSH session `wait_ssh` opened, so deploying the agent
/// does not log in again (on a slow guest a handshake takes seconds).
#[derive(Debug, Default)]
pub struct NodeSlot {
    vmid: Mutex<Option<u32>>,
    ssh: Mutex<Option<Session>>,
}

impl NodeSlot {
    pub fn with(vmid: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            vmid: Mutex::new(vmid),
            ssh: Mutex::default(),
        })
    }

    pub fn set(&self, vmid: u32) {
        if let Ok(mut slot) = self.vmid.lock() {
            *slot = Some(vmid);
        }
    }

    pub fn vmid(&self) -> Result<u32, String> {
        self.vmid
            .lock()
            .ok()
            .and_then(|slot| *slot)
            .ok_or_else(|| "no VM yet: the clone step did not record one".to_owned())
    }

    /// Keeps `session` for the node's next step.
    pub fn keep_session(&self, session: Session) {
        if let Ok(mut slot) = self.ssh.lock() {
            *slot = Some(session);
        }
    }

    /// The session an earlier step kept, if any (once).
    pub fn take_session(&self) -> Option<Session> {
        self.ssh.lock().ok().and_then(|mut slot| slot.take())
    }
}
