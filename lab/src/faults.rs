//! Injected faults and latencies, read from a seeded YAML file (format in `docs/lab.md`).
//!
//! Every decision is a pure function of (seed, operation, how many times that operation was
//! seen before), so a run that sends the same requests per operation meets the same faults,
//! whatever the interleaving between operations.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Deserialize;

use crate::error::LabError;

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

/// Faults and latencies of one operation.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperationFaults {
    /// Fraction (0..=1) of requests answered with an error from `errors` instead of running.
    #[serde(default)]
    pub error_rate: f64,
    /// Errors to draw from (uniformly); default `[cant_lock]`.
    #[serde(default)]
    pub errors: Vec<FaultKind>,
    /// Delay before the answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// How long the operation's task runs (for operations that return a UPID).
    #[serde(default)]
    pub task_ms: Option<u64>,
    /// Fraction of tasks that end with an error from `task_errors`.
    #[serde(default)]
    pub task_failure_rate: f64,
    /// Task errors to draw from; default `[storage_lock]`.
    #[serde(default)]
    pub task_errors: Vec<FaultKind>,
    /// Fraction of requests whose connection is closed without an answer.
    #[serde(default)]
    pub drop_rate: f64,
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

/// What happens to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FaultPlan {
    pub(crate) drop_connection: bool,
    pub(crate) error: Option<FaultKind>,
    pub(crate) latency: Duration,
    pub(crate) task_duration: Option<Duration>,
    pub(crate) task_error: Option<FaultKind>,
}

/// The loaded faults with their per-operation counters.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    config: Option<FaultConfig>,
    counters: Mutex<HashMap<String, u64>>,
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
        for (op, rule) in &config.operations {
            for (name, rate) in [
                ("error_rate", rule.error_rate),
                ("task_failure_rate", rule.task_failure_rate),
                ("drop_rate", rule.drop_rate),
            ] {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!(
                        "operations.{op}.{name}: {rate} is not between 0 and 1"
                    ));
                }
            }
        }
        Ok(config)
    }
}

impl Faults {
    pub(crate) fn new(config: Option<FaultConfig>) -> Self {
        Self {
            config,
            counters: Mutex::new(HashMap::new()),
        }
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
        let Some(config) = &self.config else {
            return FaultPlan::default();
        };
        let Some(rule) = config
            .operations
            .get(operation)
            .or_else(|| config.operations.get("*"))
        else {
            return FaultPlan::default();
        };
        let n = match self.counters.lock() {
            Ok(mut counters) => {
                let slot = counters.entry(operation.to_string()).or_insert(0);
                *slot += 1;
                *slot - 1
            }
            Err(_) => 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(fnv1a(operation));
        rng.set_word_pos(u128::from(n) * 32);
        let mut draw = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (drop_draw, error_draw, error_pick, task_draw, task_pick) =
            (draw(), draw(), draw(), draw(), draw());
        let pick = |kinds: &[FaultKind], fallback: FaultKind, u: f64| {
            if kinds.is_empty() {
                fallback
            } else {
                kinds[((u * kinds.len() as f64) as usize).min(kinds.len() - 1)]
            }
        };
        FaultPlan {
            drop_connection: drop_draw < rule.drop_rate,
            error: (error_draw < rule.error_rate)
                .then(|| pick(&rule.errors, FaultKind::CantLock, error_pick)),
            latency: Duration::from_millis(rule.latency_ms),
            task_duration: rule.task_ms.map(Duration::from_millis),
            task_error: (task_draw < rule.task_failure_rate)
                .then(|| pick(&rule.task_errors, FaultKind::StorageLock, task_pick)),
        }
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "seed: 7\noperations:\n  clone:\n    error_rate: 0.5\n    errors: [\"500\", cant_lock, got_timeout, no_worker_upid]\n    task_failure_rate: 0.3\n  \"*\":\n    drop_rate: 0.1\n";

    #[test]
    fn same_seed_same_plans_other_seed_other_plans() {
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
