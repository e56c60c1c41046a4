//! The Vault / OpenBao backend: KV v2 through a thin client of our own over
//! reqwest (see docs/security.md for why not vaultrs). The cluster's
//! entries live at `<mount>/kiln/<cluster>/<name>`, the run lock at
//! `<mount>/kiln/<cluster>/lock`.

mod auth;
mod error;
mod http;
pub mod kv;
pub mod setup;

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

pub use auth::Credentials;
pub use error::VaultError;
pub use http::{Answer, TlsTrust, clean_token};
pub use kv::KvSecret;

use self::auth::Session;
use self::http::Http;
use crate::error::SecretsError;
use crate::lock::{self, LockError, LockRequest, RunLock};
use crate::store::{Cas, Data, Entry, EntryMeta, SecretStore};

/// The name reserved for the run lock inside the cluster's folder.
pub const LOCK_ENTRY: &str = "lock";

/// Everything needed to reach Vault, resolved from the inventory.
pub struct VaultSettings {
    pub address: String,
    pub namespace: Option<String>,
    pub mount: String,
    pub trust: TlsTrust,
    pub credentials: Credentials,
}

/// A connection to Vault, shared by clones. Its Debug output names the
/// address and mount only: it never reaches the session or the token.
#[derive(Clone)]
pub struct VaultClient {
    session: Arc<Session>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.session.http().address())
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    pub fn new(
        address: &str,
        namespace: Option<String>,
        trust: TlsTrust,
        credentials: Credentials,
    ) -> Result<Self, VaultError> {
        let http = Arc::new(Http::new(address, namespace, trust)?);
        Ok(Self {
            session: Session::new(http, credentials),
        })
    }

    pub fn address(&self) -> &str {
        self.session.http().address()
    }

    /// (token renewals, logins) so far.
    pub fn counters(&self) -> (u64, u64) {
        self.session.counters()
    }

    /// An authenticated call. A 403 with AppRole whose token Vault no
    /// longer knows (expired between renewals: a suspended laptop) logs in
    /// again and retries once; a 403 from the policy is returned as is.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, VaultError> {
        let encode = || body.map(|body| Zeroizing::new(body.to_string().into_bytes()));
        let token = self.session.token().await?;
        let answer = self
            .session
            .http()
            .call(method.clone(), path, Some(&token), encode())
            .await?;
        if answer.status == reqwest::StatusCode::FORBIDDEN
            && !self.session.is_alive(&token).await
            && self.session.invalidate().await
        {
            let token = self.session.token().await?;
            return self
                .session
                .http()
                .call(method, path, Some(&token), encode())
                .await;
        }
        Ok(answer)
    }

    pub fn failure(&self, method: &Method, path: &str, answer: &Answer) -> VaultError {
        self.session.http().failure(method, path, answer)
    }

    pub fn unexpected(&self, method: &Method, path: &str, reason: &str) -> VaultError {
        self.session.http().unexpected(method, path, reason)
    }
}

/// The cluster's entries in one KV v2 mount.
#[derive(Clone)]
pub struct VaultStore {
    client: VaultClient,
    mount: String,
    cluster: String,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("client", &self.client)
            .field("mount", &self.mount)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl VaultStore {
    pub fn new(settings: VaultSettings, cluster: &str) -> Result<Self, VaultError> {
        let client = VaultClient::new(
            &settings.address,
            settings.namespace,
            settings.trust,
            settings.credentials,
        )?;
        Ok(Self {
            client,
            mount: settings.mount,
            cluster: cluster.to_owned(),
        })
    }

    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The KV path (inside the mount) of entry `name`.
    pub fn path_of(&self, name: &str) -> String {
        format!("kiln/{}/{name}", self.cluster)
    }

    fn location(&self, name: &str) -> String {
        format!("{}/{}", self.mount, self.path_of(name))
    }
}

impl SecretStore for VaultStore {
    fn describe(&self) -> String {
        format!(
            "Vault {} (KV v2 mount `{}`, folder kiln/{})",
            self.client.address(),
            self.mount,
            self.cluster
        )
    }

    async fn read(&self, name: &str) -> Result<Option<Entry>, SecretsError> {
        let secret = kv::read(&self.client, &self.mount, &self.path_of(name)).await?;
        Ok(secret.map(|secret| {
            let keys = secret.data.keys().cloned().collect();
            Entry {
                meta: EntryMeta {
                    name: name.to_owned(),
                    location: self.location(name),
                    version: secret.version,
                    created: None,
                    updated: secret.created,
                    keys,
                },
                data: secret.data,
            }
        }))
    }

    async fn write(&self, name: &str, data: Data, cas: Cas) -> Result<u64, SecretsError> {
        let path = self.path_of(name);
        let mut result = kv::write(&self.client, &self.mount, &path, &data, cas).await;
        // `cas=0` fails when only deleted versions remain (a soft delete in
        // the UI); "absent" means "no readable value", so retry against the
        // current version then.
        if cas == Cas::Absent
            && let Err(error) = &result
            && kv::is_cas_conflict(error)
            && kv::read(&self.client, &self.mount, &path).await?.is_none()
            && let Some(meta) = kv::metadata(&self.client, &self.mount, &path).await?
        {
            let cas = Cas::Version(meta.current_version);
            result = kv::write(&self.client, &self.mount, &path, &data, cas).await;
        }
        match result {
            Ok(version) => Ok(version),
            Err(error) if kv::is_cas_conflict(&error) => Err(SecretsError::CasConflict {
                name: name.to_owned(),
                location: self.location(name),
                reason: error.errors().to_owned(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    async fn list(&self) -> Result<Vec<EntryMeta>, SecretsError> {
        let folder = format!("kiln/{}", self.cluster);
        let mut metas = Vec::new();
        for name in kv::list_recursive(&self.client, &self.mount, &folder).await? {
            if name == LOCK_ENTRY {
                continue;
            }
            if let Some(meta) =
                kv::metadata(&self.client, &self.mount, &self.path_of(&name)).await?
            {
                metas.push(EntryMeta {
                    name: name.clone(),
                    location: self.location(&name),
                    version: meta.current_version,
                    created: meta.created,
                    updated: meta.updated,
                    keys: Vec::new(),
                });
            }
        }
        Ok(metas)
    }

    async fn lock(&self, request: LockRequest) -> Result<RunLock, LockError> {
        lock::vault::acquire(self.clone(), request).await
    }
}
