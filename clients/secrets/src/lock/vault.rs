//! The Vault run lock: a KV v2 document at `<mount>/kiln/<cluster>/lock`,
//! written only with check-and-set so two runs can never both believe they
//! hold it. The holder renews it every third of its TTL; a document not
//! renewed within its TTL belongs to a dead run and is taken over with a
//! warning. Release writes a `released` state rather than deleting, so the
//! version history stays a record of who ran when.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use super::{Holder, Inner, LockError, LockRequest, RunLock, timestamp};
use crate::error::SecretsError;
use crate::store::{Cas, Data, SecretStore};
use crate::vault::{LOCK_ENTRY, VaultStore};

const HELD: &str = "held";
const RELEASED: &str = "released";

pub struct VaultLock {
    store: VaultStore,
    cluster: String,
    holder: Holder,
    version: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::AbortHandle,
}

impl VaultLock {
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    pub async fn release(self) -> Result<(), LockError> {
        self.renewer.abort();
        let mut holder = self.holder.clone();
        holder.renewed = timestamp(SystemTime::now());
        let version = self.version.load(Ordering::Relaxed);
        match write(&self.store, RELEASED, &holder, Cas::Version(version)).await {
            Ok(_) => Ok(()),
            Err(SecretsError::CasConflict { .. }) => Err(LockError::Lost {
                cluster: self.cluster.clone(),
                location: location(&self.store),
                by: "another run".to_owned(),
                reason:
                    "the lock was written since this run last renewed it (taken over as stale?)"
                        .to_owned(),
            }),
            Err(error) => Err(LockError::Backend(error.to_string())),
        }
    }
}

impl Drop for VaultLock {
    /// A lock dropped without `release` stops being renewed, so it expires
    /// after its TTL instead of being held for the rest of the process.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn location(store: &VaultStore) -> String {
    format!("{}/{}", store.mount(), store.path_of(LOCK_ENTRY))
}

async fn write(
    store: &VaultStore,
    state: &str,
    holder: &Holder,
    cas: Cas,
) -> Result<u64, SecretsError> {
    let json = serde_json::to_string(holder)
        .map_err(|error| SecretsError::Config(format!("cannot encode the lock holder: {error}")))?;
    let data: Data = [
        ("state".to_owned(), SecretString::from(state)),
        ("holder".to_owned(), SecretString::from(json)),
    ]
    .into_iter()
    .collect();
    store.write(LOCK_ENTRY, data, cas).await
}

/// Takes the lock, taking over a stale one, or says who holds it.
pub async fn acquire(store: VaultStore, request: LockRequest) -> Result<RunLock, LockError> {
    let backend = |error: SecretsError| LockError::Backend(error.to_string());
    // A few rounds only: each lost race means another run just wrote the lock.
    for _ in 0..5 {
        let current = store.read(LOCK_ENTRY).await.map_err(backend)?;
        let now = SystemTime::now();
        let (cas, taken_over) = match &current {
            // The store's create-only write also covers soft-deleted versions.
            None => (Cas::Absent, None),
            Some(entry) => {
                let state = entry
                    .data
                    .get("state")
                    .map(|s| s.expose_secret().to_owned());
                let holder = entry
                    .data
                    .get("holder")
                    .and_then(|json| serde_json::from_str::<Holder>(json.expose_secret()).ok())
                    .unwrap_or_else(Holder::unknown);
                let cas = Cas::Version(entry.meta.version);
                if state.as_deref() == Some(RELEASED) {
                    (cas, None)
                } else if holder.is_stale(now) || holder == Holder::unknown() {
                    (cas, Some(holder))
                } else {
                    return Err(LockError::Held {
                        cluster: request.cluster,
                        location: location(&store),
                        age: holder.age(now),
                        holder: Box::new(holder),
                    });
                }
            }
        };
        let holder = request.holder();
        match write(&store, HELD, &holder, cas).await {
            Ok(version) => {
                if let Some(stale) = &taken_over {
                    tracing::warn!(
                        cluster = %request.cluster,
                        stale_run = %stale.run_id,
                        stale_holder = %format!("{}@{}", stale.user, stale.host),
                        last_renewed = %stale.renewed,
                        "took over a stale run lock: its holder stopped renewing it past its TTL"
                    );
                }
                return Ok(start(store, holder, version, taken_over, &request));
            }
            Err(SecretsError::CasConflict { .. }) => continue,
            Err(error) => return Err(backend(error)),
        }
    }
    Err(LockError::Backend(format!(
        "the lock {} kept changing while kiln tried to take it",
        location(&store)
    )))
}

fn start(
    store: VaultStore,
    holder: Holder,
    version: u64,
    taken_over: Option<Holder>,
    request: &LockRequest,
) -> RunLock {
    let version = Arc::new(AtomicU64::new(version));
    let lost = Arc::new(AtomicBool::new(false));
    let interval = (request.ttl / 3).max(std::time::Duration::from_secs(1));
    let task = {
        let store = store.clone();
        let holder = holder.clone();
        let version = Arc::clone(&version);
        let lost = Arc::clone(&lost);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let mut renewed = holder.clone();
                renewed.renewed = timestamp(SystemTime::now());
                let cas = Cas::Version(version.load(Ordering::Relaxed));
                match write(&store, HELD, &renewed, cas).await {
                    Ok(new) => version.store(new, Ordering::Relaxed),
                    Err(SecretsError::CasConflict { .. }) => {
                        lost.store(true, Ordering::Relaxed);
                        tracing::error!(
                            lock = %location(&store),
                            "the run lock was taken by another run; stop this run"
                        );
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "renewing the run lock failed; will retry")
                    }
                }
            }
        })
    };
    RunLock {
        location: location(&store),
        holder: holder.clone(),
        taken_over,
        inner: Inner::Vault(Box::new(VaultLock {
            store,
            cluster: request.cluster.clone(),
            holder,
            version,
            lost,
            renewer: task.abort_handle(),
        })),
    }
}
