//! kiln-secrets: where kiln keeps secrets, and the run lock. It knows
//! nothing of the inventory: kiln's `secrets` module opens these stores from
//! what the inventory says and resolves its references through them.
//!
//! - [`SecretStore`] is the one interface of both backends: [`FileStore`]
//!   (age-encrypted file, the default) and [`VaultStore`] (KV v2).
//! - [`generated`] makes and keeps the cluster's SSH key, agent tokens,
//!   collector certificate and, later, the K3s token and Talos bundle.
//! - [`SecretStore::lock`] takes the cluster's run lock ([`lock`]).
//!
//! No value is ever formatted: values are `SecretString` from the moment they
//! are read, and every type here that can reach a credential has a Debug
//! output without it.

mod backend;
pub mod error;
pub mod file;
pub mod generated;
pub mod lock;
mod paths;
mod store;
pub mod vault;

pub use backend::Store;
pub use error::SecretsError;
pub use file::FileStore;
pub use generated::{ClusterNames, SshKeyPair, cluster_ssh_keypair};
pub use lock::{Holder, LockError, LockRequest, RunLock};
pub use paths::Dirs;
pub use store::{Cas, Data, Entry, EntryMeta, SecretStore, value};
pub use vault::{VaultError, VaultStore};
