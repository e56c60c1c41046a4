//! kiln's secrets: references from the inventory resolved lazily, secrets
//! kiln generates kept in a store so rebuilds reuse them, and the run lock.
//!
//! - [`ClusterSecrets::open`] opens what `inventory.secrets` describes;
//!   [`ClusterSecrets::resolve`] turns a reference into a `SecretString`.
//! - [`SecretStore`] is the one interface of both backends: [`FileStore`]
//!   (age-encrypted file, the default) and [`VaultStore`] (KV v2).
//! - [`generated`] makes and keeps the cluster's SSH key, agent tokens,
//!   collector certificate and, later, the K3s token and Talos bundle.
//! - [`SecretStore::lock`] takes the cluster's run lock ([`lock`]).
//!
//! No value is ever formatted: values are `SecretString` from the moment they
//! are read, and every type here that can reach a credential has a Debug
//! output without it.

pub mod error;
pub mod file;
pub mod generated;
pub mod lock;
mod paths;
mod resolve;
mod store;
pub mod vault;

pub use error::SecretsError;
pub use file::FileStore;
pub use generated::{SshKeyPair, cluster_ssh_keypair};
pub use lock::{Holder, LockError, LockRequest, RunLock};
pub use paths::Dirs;
pub use resolve::ClusterSecrets;
pub use store::{Cas, Data, Entry, EntryMeta, SecretStore, Store, value};
pub use vault::{VaultError, VaultStore};
