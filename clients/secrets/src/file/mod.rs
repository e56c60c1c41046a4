//! The embedded default backend: one age-encrypted JSON document per
//! cluster in the state dir, decrypted by the user's identity in the config
//! dir. Writes are read-modify-write under a short flock, so two kiln
//! processes never lose each other's entries.

pub mod identity;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use age::x25519::Identity;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::SecretsError;
use crate::lock::{self, LockError, LockRequest, RunLock};
use crate::paths::{Dirs, private_dir, write_atomic};
use crate::store::{Cas, Data, Entry, EntryMeta, SecretStore};

/// Bumped when the document layout changes incompatibly.
const FORMAT: u32 = 1;

/// The file store of one cluster.
#[derive(Debug, Clone)]
pub struct FileStore {
    cluster: String,
    store: PathBuf,
    identity: PathBuf,
    write_lock: PathBuf,
    run_lock: PathBuf,
}

/// What `kiln secrets init` reports for the file store.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub identity: PathBuf,
    pub identity_created: bool,
    pub public_key: String,
    pub store: PathBuf,
    pub store_created: bool,
}

#[derive(Serialize, Deserialize)]
struct Document {
    format: u32,
    cluster: String,
    entries: BTreeMap<String, StoredEntry>,
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    version: u64,
    created: String,
    updated: String,
    #[serde(serialize_with = "expose_values")]
    data: Data,
}

fn expose_values<S: serde::Serializer>(data: &Data, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(data.iter().map(|(key, value)| (key, value.expose_secret())))
}

impl FileStore {
    pub fn new(dirs: &Dirs, cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            store: dirs.state.join(format!("{cluster}.secrets.age")),
            identity: identity::path(&dirs.config),
            write_lock: dirs.state.join(format!("{cluster}.secrets.lock")),
            run_lock: dirs.state.join(format!("{cluster}.lock")),
        }
    }

    pub fn store_path(&self) -> &Path {
        &self.store
    }

    pub fn identity_path(&self) -> &Path {
        &self.identity
    }

    /// Creates the identity (if missing) and an empty store (if missing).
    /// An existing store is opened to prove the identity fits it.
    pub async fn init(&self) -> Result<InitReport, SecretsError> {
        let this = self.clone();
        blocking(move || this.init_blocking()).await
    }

    fn init_blocking(&self) -> Result<InitReport, SecretsError> {
        let _guard = self.write_guard()?;
        let existing = identity::load(&self.identity)?;
        let identity_created = existing.is_none();
        if identity_created && self.store.exists() {
            return Err(self.identity_missing());
        }
        let identity = match existing {
            Some(identity) => identity,
            None => identity::create(&self.identity)?,
        };
        let store_created = !self.store.exists();
        let document = self.load_with(&identity)?;
        if store_created {
            self.save(&document, &identity)?;
        }
        Ok(InitReport {
            identity: self.identity.clone(),
            identity_created,
            public_key: identity.to_public().to_string(),
            store: self.store.clone(),
            store_created,
        })
    }

    fn identity_missing(&self) -> SecretsError {
        SecretsError::IdentityMissing {
            identity: self.identity.clone(),
            store: self.store.clone(),
        }
    }

    /// Reads and decrypts the document; an absent store is an empty one.
    fn load(&self) -> Result<Document, SecretsError> {
        if !self.store.exists() {
            return Ok(self.empty());
        }
        let identity = identity::load(&self.identity)?.ok_or_else(|| self.identity_missing())?;
        self.load_with(&identity)
    }

    fn empty(&self) -> Document {
        Document {
            format: FORMAT,
            cluster: self.cluster.clone(),
            entries: BTreeMap::new(),
        }
    }

    fn load_with(&self, identity: &Identity) -> Result<Document, SecretsError> {
        let ciphertext = match std::fs::read(&self.store) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(self.empty()),
            Err(source) => return Err(SecretsError::io("read", &self.store, source)),
        };
        let plaintext =
            Zeroizing::new(
                age::decrypt(identity, &ciphertext).map_err(|error| match error {
                    age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                        SecretsError::WrongIdentity {
                            identity: self.identity.clone(),
                            store: self.store.clone(),
                        }
                    }
                    other => self.corrupt(format!("not a readable age file ({other})")),
                })?,
            );
        let document: Document = serde_json::from_slice(&plaintext)
            .map_err(|error| self.corrupt(format!("invalid JSON inside ({error})")))?;
        if document.format != FORMAT {
            return Err(self.corrupt(format!(
                "format {} is not the format {FORMAT} this kiln reads",
                document.format
            )));
        }
        if document.cluster != self.cluster {
            return Err(self.corrupt(format!(
                "it belongs to cluster `{}`, not `{}`",
                document.cluster, self.cluster
            )));
        }
        Ok(document)
    }

    fn corrupt(&self, reason: String) -> SecretsError {
        SecretsError::CorruptStore {
            path: self.store.clone(),
            reason,
        }
    }

    fn save(&self, document: &Document, identity: &Identity) -> Result<(), SecretsError> {
        let plaintext = Zeroizing::new(
            serde_json::to_vec(document)
                .map_err(|error| self.corrupt(format!("cannot serialize ({error})")))?,
        );
        let ciphertext = age::encrypt(&identity.to_public(), &plaintext)
            .map_err(|error| self.corrupt(format!("cannot encrypt ({error})")))?;
        write_atomic(&self.store, &ciphertext)
    }

    /// An exclusive flock held for one read-modify-write.
    fn write_guard(&self) -> Result<File, SecretsError> {
        if let Some(dir) = self.write_lock.parent() {
            private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.write_lock)
            .map_err(|source| SecretsError::io("open", &self.write_lock, source))?;
        file.lock()
            .map_err(|source| SecretsError::io("lock", &self.write_lock, source))?;
        Ok(file)
    }

    fn write_blocking(&self, name: &str, data: Data, cas: Cas) -> Result<u64, SecretsError> {
        let _guard = self.write_guard()?;
        let identity = match identity::load(&self.identity)? {
            Some(identity) => identity,
            None if self.store.exists() => return Err(self.identity_missing()),
            None => identity::create(&self.identity)?,
        };
        let mut document = self.load_with(&identity)?;
        let current = document.entries.get(name).map(|entry| entry.version);
        let conflict = |reason: String| SecretsError::CasConflict {
            name: name.to_owned(),
            location: self.store.display().to_string(),
            reason,
        };
        match (cas, current) {
            (Cas::Absent, Some(version)) => {
                return Err(conflict(format!(
                    "expected no entry, found version {version}"
                )));
            }
            (Cas::Version(expected), actual) if Some(expected) != actual => {
                return Err(conflict(format!(
                    "expected version {expected}, found {}",
                    actual.map_or("none".to_owned(), |version| version.to_string())
                )));
            }
            _ => {}
        }
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let version = current
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| self.corrupt(format!("`{name}` has an impossible version")))?;
        let created = document
            .entries
            .get(name)
            .map_or_else(|| now.clone(), |entry| entry.created.clone());
        document.entries.insert(
            name.to_owned(),
            StoredEntry {
                version,
                created,
                updated: now,
                data,
            },
        );
        self.save(&document, &identity)?;
        Ok(version)
    }

    fn meta(&self, name: &str, entry: &StoredEntry) -> EntryMeta {
        EntryMeta {
            name: name.to_owned(),
            location: format!("{}#{name}", self.store.display()),
            version: entry.version,
            created: humantime::parse_rfc3339(&entry.created).ok(),
            updated: humantime::parse_rfc3339(&entry.updated).ok(),
            keys: entry.data.keys().cloned().collect(),
        }
    }
}

impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("the file store {}", self.store.display())
    }

    async fn read(&self, name: &str) -> Result<Option<Entry>, SecretsError> {
        let this = self.clone();
        let name = name.to_owned();
        blocking(move || {
            let mut document = this.load()?;
            Ok(document.entries.remove(&name).map(|entry| Entry {
                meta: this.meta(&name, &entry),
                data: entry.data,
            }))
        })
        .await
    }

    async fn write(&self, name: &str, data: Data, cas: Cas) -> Result<u64, SecretsError> {
        let this = self.clone();
        let name = name.to_owned();
        blocking(move || this.write_blocking(&name, data, cas)).await
    }

    async fn list(&self) -> Result<Vec<EntryMeta>, SecretsError> {
        let this = self.clone();
        blocking(move || {
            let document = this.load()?;
            Ok(document
                .entries
                .iter()
                .map(|(name, entry)| this.meta(name, entry))
                .collect())
        })
        .await
    }

    async fn lock(&self, request: LockRequest) -> Result<RunLock, LockError> {
        let path = self.run_lock.clone();
        tokio::task::spawn_blocking(move || lock::file::acquire(&path, request))
            .await
            .map_err(|error| LockError::Backend(format!("the lock task failed: {error}")))?
    }
}

/// Runs file I/O and age off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SecretsError> + Send + 'static,
) -> Result<T, SecretsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SecretsError::Config(format!("a file store task failed: {error}")))?
}

/// A value for a `file:` entry, which holds one secret under this key.
pub const VALUE_KEY: &str = "value";

/// The one-value entry `file:<name>` references read.
pub fn single_value(value: SecretString) -> Data {
    BTreeMap::from([(VALUE_KEY.to_owned(), value)])
}

#[cfg(test)]
mod tests;
