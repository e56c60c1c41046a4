//! The lab's faults file (format in `docs/lab.md`): seeded per-operation draws from
//! `kiln_lab_core::faults`, PVE's error kinds, and what only a PVE lab can break — the
//! storage allocation lock, the boot time until the guest agent answers, guests that
//! never boot.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kiln_lab_core::LabError;
use kiln_lab_core::faults::{self, FaultDraws, FaultKinds};
use serde::Deserialize;

/// Faults and latencies of one operation, with PVE's error kinds.
pub type OperationFaults = faults::OperationFaults<FaultKind>;

/// What happens to one request.
pub(crate) type FaultPlan = faults::FaultPlan<FaultKind>;

/// The faults file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of every random decision; printed at start.
    pub seed: u64,
    /// Rules per operation name (see `docs/lab.md`); `"*"` applies to operations not listed.
    #[serde(default)]
    pub operations: BTreeMap<String, OperationFaults>,
    /// Time from a finished start task until the guest agent answers; replaces
    /// `LabConfig::boot_delay` when set.
    #[serde(default)]
    pub boot_to_agent_ms: Option<u64>,
    /// Real contention on each node's storage allocation lock (pve-storage
    /// `cluster_lock_storage`): clone tasks hold their target storage's lock for `hold_ms`
    /// and fail after waiting `timeout_ms` for it.
    #[serde(default)]
    pub storage_lock: Option<StorageLockConfig>,
    /// VMs that never finish booting: they run, but their guest agent never
    /// answers (PVE: `QEMU guest agent is not running`), like a broken image.
    #[serde(default)]
    pub broken_boot_vmids: Vec<u32>,
}

/// Per-storage lock contention (see `FaultConfig::storage_lock`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageLockConfig {
    /// How long a clone holds the lock of its target storage.
    pub hold_ms: u64,
    /// How long a clone waits for that lock before failing with PVE's `got timeout`.
    pub timeout_ms: u64,
}

/// The failures a real PVE shows under load (see `shared/reference/notes/proxmox.md` §8).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum FaultKind {
    /// A plain HTTP 500.
    #[serde(rename = "500")]
    Internal,
    /// `can't lock file '/var/lock/qemu-server/lock-N.conf' - got timeout`.
    #[serde(rename = "cant_lock")]
    CantLock,
    /// `got timeout`.
    #[serde(rename = "got_timeout")]
    GotTimeout,
    /// `got no worker upid - start worker failed`.
    #[serde(rename = "no_worker_upid")]
    NoWorkerUpid,
    /// `can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout`.
    #[serde(rename = "storage_lock")]
    StorageLock,
}

impl FaultKinds for FaultKind {
    const REQUEST_DEFAULT: Self = Self::CantLock;
    const TASK_DEFAULT: Self = Self::StorageLock;
}

impl FaultKind {
    /// PVE's message for this failure; `vmid` names the config lock file.
    pub fn message(self, vmid: Option<u32>, storage: &str) -> String {
        match self {
            Self::Internal => "internal error (fault injected by kiln-lab)".to_string(),
            Self::CantLock => format!(
                "can't lock file '/var/lock/qemu-server/lock-{}.conf' - got timeout",
                vmid.unwrap_or_default()
            ),
            Self::GotTimeout => "got timeout".to_string(),
            Self::NoWorkerUpid => "got no worker upid - start worker failed".to_string(),
            Self::StorageLock => {
                format!(
                    "can't lock file '/var/lock/pve-manager/pve-storage-{storage}' - got timeout"
                )
            }
        }
    }
}

impl FaultConfig {
    /// Reads and checks a faults file.
    pub fn from_file(path: &Path) -> Result<Self, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::FaultsRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|message| LabError::FaultsParse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks faults YAML.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let config: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        faults::check_rates(&config.operations)?;
        Ok(config)
    }
}

/// The faults in force: the draws, and the file's PVE-only settings.
#[derive(Debug)]
pub(crate) struct Faults {
    config: Option<FaultConfig>,
    draws: Option<FaultDraws<FaultKind>>,
}

impl Faults {
    pub(crate) fn new(config: Option<FaultConfig>) -> Self {
        let draws = config
            .as_ref()
            .map(|c| FaultDraws::new(c.seed, c.operations.clone()));
        Self { config, draws }
    }

    pub(crate) fn seed(&self) -> Option<u64> {
        self.config.as_ref().map(|c| c.seed)
    }

    pub(crate) fn storage_lock(&self) -> Option<StorageLockConfig> {
        self.config.as_ref().and_then(|c| c.storage_lock)
    }

    pub(crate) fn boot_to_agent(&self) -> Option<Duration> {
        self.config
            .as_ref()
            .and_then(|c| c.boot_to_agent_ms)
            .map(Duration::from_millis)
    }

    /// Whether the VM is one whose guest never boots (`broken_boot_vmids`).
    pub(crate) fn never_boots(&self, vmid: u32) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.broken_boot_vmids.contains(&vmid))
    }

    /// Draws the faults of the next request of `operation`.
    pub(crate) fn plan(&self, operation: &str) -> FaultPlan {
        self.draws
            .as_ref()
            .map(|d| d.plan(operation))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "seed: 7\noperations:\n  clone:\n    error_rate: 0.5\n    errors: [\"500\", cant_lock, got_timeout, no_worker_upid]\n    task_failure_rate: 0.3\n  \"*\":\n    drop_rate: 0.1\n";

    #[test]
    fn a_faults_file_draws_the_same_plans_for_the_same_seed() {
        let a = Faults::new(Some(FaultConfig::from_yaml(YAML).unwrap()));
        let b = Faults::new(Some(FaultConfig::from_yaml(YAML).unwrap()));
        let other = Faults::new(Some(
            FaultConfig::from_yaml(&YAML.replace("seed: 7", "seed: 8")).unwrap(),
        ));
        let plans = |f: &Faults| (0..64).map(|_| f.plan("clone")).collect::<Vec<_>>();
        let pa = plans(&a);
        assert_eq!(pa, plans(&b));
        assert_ne!(pa, plans(&other));
        let errors = pa.iter().filter(|p| p.error.is_some()).count();
        assert!(
            (16..=48).contains(&errors),
            "{errors} errors of 64 at rate 0.5"
        );
    }

    #[test]
    fn rates_outside_zero_one_are_rejected() {
        let bad = "seed: 1\noperations:\n  start:\n    error_rate: 2\n";
        assert!(
            FaultConfig::from_yaml(bad)
                .unwrap_err()
                .contains("error_rate")
        );
        assert!(FaultConfig::from_yaml("seed: 1\nbogus: 2\n").is_err());
    }
}
