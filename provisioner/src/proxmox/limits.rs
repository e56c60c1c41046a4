//! Concurrency caps per PVE node and per storage. Parallel clones onto one
//! storage or many config writes on one node are what makes PVE answer
//! `can't lock file ... got timeout` (notes §8.2–3), so kiln queues them here.

use std::collections::HashMap;
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
        }
    }

    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    /// Waits for a slot on `node` and, if given, on `storage`. Node first,
    /// then storage, always in that order, so two callers cannot deadlock.
    pub async fn acquire(&self, node: &str, storage: Option<&str>) -> Permits {
        let mut held = Vec::with_capacity(2);
        let node_sem = semaphore(&self.nodes, node, self.config.per_node);
        // A semaphore is closed only by `close()`, which kiln never calls.
        if let Ok(p) = node_sem.acquire_owned().await {
            held.push(p);
        }
        if let Some(storage) = storage {
            let st = semaphore(&self.storages, storage, self.config.per_storage);
            if let Ok(p) = st.acquire_owned().await {
                held.push(p);
            }
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
}
