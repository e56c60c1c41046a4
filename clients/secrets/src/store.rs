//! The one interface both backends implement: named entries of key → secret
//! value, versioned, written with check-and-set, plus the cluster's run lock.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use secrecy::SecretString;
use serde::Serialize;

use crate::error::SecretsError;
use crate::lock::{LockError, LockRequest, RunLock};

/// The values of one entry, by key. Keys are not secret; values are.
pub type Data = BTreeMap<String, SecretString>;

/// One entry as read: its values (redacted in Debug) and what is known about it.
#[derive(Debug)]
pub struct Entry {
    pub data: Data,
    pub meta: EntryMeta,
}

/// What `kiln secrets list` shows: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryMeta {
    /// The entry's name inside the cluster's store (`ssh/kiln`, `agent/node1`, …).
    pub name: String,
    /// Where it lives: the store file or the Vault KV path.
    pub location: String,
    /// Incremented by every write; check-and-set compares against it.
    pub version: u64,
    #[serde(serialize_with = "rfc3339")]
    pub created: Option<SystemTime>,
    #[serde(serialize_with = "rfc3339")]
    pub updated: Option<SystemTime>,
    /// The keys the entry holds (names only).
    pub keys: Vec<String>,
}

fn rfc3339<S: serde::Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => s.collect_str(&humantime::format_rfc3339_seconds(*time)),
        None => s.serialize_none(),
    }
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Overwrite whatever is there.
    Any,
    /// Only create: fail if the entry exists.
    Absent,
    /// Only replace this version: fail if someone wrote since it was read.
    Version(u64),
}

/// A secrets backend. The futures are `Send` so the engine can hold a store
/// across spawned tasks.
pub trait SecretStore: Send + Sync {
    /// One line naming the backend and where it keeps things, for messages.
    fn describe(&self) -> String;

    /// The entry `name`, or `None` when it does not exist.
    fn read(&self, name: &str) -> impl Future<Output = Result<Option<Entry>, SecretsError>> + Send;

    /// Writes `data` as the new version of `name`; returns that version.
    fn write(
        &self,
        name: &str,
        data: Data,
        cas: Cas,
    ) -> impl Future<Output = Result<u64, SecretsError>> + Send;

    /// Every entry of this cluster, without values.
    fn list(&self) -> impl Future<Output = Result<Vec<EntryMeta>, SecretsError>> + Send;

    /// Takes the cluster's run lock, or says who holds it.
    fn lock(&self, request: LockRequest)
    -> impl Future<Output = Result<RunLock, LockError>> + Send;
}

/// The value of `key` in an entry, or why it is not there.
pub fn value<'a>(entry: &'a Entry, key: &str) -> Result<&'a SecretString, String> {
    entry.data.get(key).ok_or_else(|| {
        let keys: Vec<&str> = entry.data.keys().map(String::as_str).collect();
        format!(
            "`{}` has no key `{key}` (it has: {})",
            entry.meta.name,
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        )
    })
}
