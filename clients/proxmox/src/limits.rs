//! Concurrency caps per PVE node and per storage. Parallel clones onto one
//! storage or many config writes on one node are what makes PVE answer
//! `can't lock file ... got timeout` (notes §8.2–3), so kiln queues them here.
//!
//! PVE locks a shared storage cluster-wide but a node-local one (LVM-thin,
//! a directory) per node (pve-storage `cluster_lock_storage`), so a local
//! storage's slots are counted per node. A storage counts as shared until
//! [`Limits::mark_local`] says otherwise: the safe side when kiln does not know.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many mutating operations may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Per PVE node: dispatched tasks and sync config writes (pvedaemon has
    /// 3 workers by default).
    pub per_node: usize,
    /// Per storage: clones, uploads, downloads and resizes allocating on it.
    pub per_storage: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_node: 4,
            per_storage: 2,
        }
    }
}

#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    nodes: Mutex<HashMap<String, Arc<Semaphore>>>,
    storages: Mutex<HashMap<String, Arc<Semaphore>>>,
    local_storages: Mutex<HashSet<String>>,
}

/// Held while an operation runs; dropping it frees the slot.
#[derive(Debug, Default)]
pub struct Permits(Vec<OwnedSemaphorePermit>);

impl Permits {
    pub fn none() -> Self {
        Self::default()
    }

    /// How many slots are held (node, and storage if any).
    pub fn count(&self) -> usize {
        self.0.len()
    }
}

fn semaphore(
    map: &Mutex<HashMap<String, Arc<Semaphore>>>,
    key: &str,
    size: usize,
) -> Arc<Semaphore> {
    // A poisoned map only means another task panicked while inserting; the
    // map itself is still consistent.
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.entry(key.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(size.clamp(1, Semaphore::MAX_PERMITS))))
        .clone()
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Self {
            config,
            nodes: Mutex::default(),
            storages: Mutex::default(),
            local_storages: Mutex::default(),
        }
    }

    /// Records that `storage` is node-local: its slots are then per node.
    pub fn mark_local(&self, storage: &str) {
        self.local_storages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(storage.to_owned());
    }

    fn storage_key(&self, node: &str, storage: &str) -> String {
        let local = self
            .local_storages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(storage);
        if local {
            format!("{node}/{storage}")
        } else {
            storage.to_owned()
        }
    }

    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    /// Waits for a slot on `storage`, if given, then on `node`: always in
    /// that order, so two callers cannot deadlock. Storage first because a
    /// storage's queue is the long one (clones): a clone waiting for its
    /// storage must not sit on a node slot the short steps of VMs already
    /// cloned (configure, start) need.
    pub async fn acquire(&self, node: &str, storage: Option<&str>) -> Permits {
        let mut held = Vec::with_capacity(2);
        // A semaphore is closed only by `close()`, which kiln never calls.
        if let Some(storage) = storage {
            let key = self.storage_key(node, storage);
            let st = semaphore(&self.storages, &key, self.config.per_storage);
            if let Ok(p) = st.acquire_owned().await {
                held.push(p);
            }
        }
        let node_sem = semaphore(&self.nodes, node, self.config.per_node);
        if let Ok(p) = node_sem.acquire_owned().await {
            held.push(p);
        }
        Permits(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn caps_per_node_and_per_storage() {
        let limits = Arc::new(Limits::new(LimitsConfig {
            per_node: 2,
            per_storage: 1,
        }));
        let a = limits.acquire("pve1", None).await;
        let _b = limits.acquire("pve1", None).await;
        let blocked = tokio::time::timeout(Duration::from_millis(50), limits.acquire("pve1", None));
        assert!(blocked.await.is_err(), "third permit on pve1 granted");
        let _other = limits.acquire("pve2", Some("local-lvm")).await;
        let blocked = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("pve3", Some("local-lvm")),
        );
        assert!(blocked.await.is_err(), "second permit on local-lvm granted");
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(50), limits.acquire("pve1", None));
        assert!(third.await.is_ok());
    }

    #[tokio::test]
    async fn a_caller_queued_for_its_storage_holds_no_node_slot() {
        let limits = Arc::new(Limits::new(LimitsConfig {
            per_node: 2,
            per_storage: 1,
        }));
        let _cloning = limits.acquire("pve1", Some("local-lvm")).await;
        let queued = tokio::spawn({
            let limits = limits.clone();
            async move { limits.acquire("pve1", Some("local-lvm")).await.count() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!queued.is_finished(), "a second clone got the storage slot");
        let configure =
            tokio::time::timeout(Duration::from_millis(50), limits.acquire("pve1", None));
        assert!(
            configure.await.is_ok(),
            "a clone waiting for the storage kept the node's last slot"
        );
        queued.abort();
    }

    #[tokio::test]
    async fn a_local_storage_is_counted_per_node() {
        let limits = Limits::new(LimitsConfig {
            per_node: 4,
            per_storage: 1,
        });
        limits.mark_local("local-lvm");
        let _pve1 = limits.acquire("pve1", Some("local-lvm")).await;
        let pve2 = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("pve2", Some("local-lvm")),
        );
        assert!(pve2.await.is_ok(), "pve2's local-lvm waited for pve1's");
        let again = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("pve1", Some("local-lvm")),
        );
        assert!(
            again.await.is_err(),
            "second permit on pve1's local-lvm granted"
        );
        let _shared = limits.acquire("pve1", Some("ceph")).await;
        let shared_elsewhere = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire("pve2", Some("ceph")),
        );
        assert!(
            shared_elsewhere.await.is_err(),
            "a shared storage was counted per node"
        );
    }
}
