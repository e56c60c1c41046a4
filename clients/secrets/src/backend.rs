//! Either backend behind the one [`SecretStore`] interface: what kiln holds
//! once the inventory has chosen.

use crate::error::SecretsError;
use crate::file::FileStore;
use crate::lock::{LockError, LockRequest, RunLock};
use crate::store::{Cas, Data, Entry, EntryMeta, SecretStore};
use crate::vault::VaultStore;

/// The backend the inventory chose. Cloning shares the backend's
/// connection (Vault's client), not its data.
#[derive(Clone)]
pub enum Store {
    File(FileStore),
    Vault(VaultStore),
}

impl SecretStore for Store {
    fn describe(&self) -> String {
        match self {
            Self::File(store) => store.describe(),
            Self::Vault(store) => store.describe(),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Entry>, SecretsError> {
        match self {
            Self::File(store) => store.read(name).await,
            Self::Vault(store) => store.read(name).await,
        }
    }

    async fn write(&self, name: &str, data: Data, cas: Cas) -> Result<u64, SecretsError> {
        match self {
            Self::File(store) => store.write(name, data, cas).await,
            Self::Vault(store) => store.write(name, data, cas).await,
        }
    }

    async fn list(&self) -> Result<Vec<EntryMeta>, SecretsError> {
        match self {
            Self::File(store) => store.list().await,
            Self::Vault(store) => store.list().await,
        }
    }

    async fn lock(&self, request: LockRequest) -> Result<RunLock, LockError> {
        match self {
            Self::File(store) => store.lock(request).await,
            Self::Vault(store) => store.lock(request).await,
        }
    }
}
