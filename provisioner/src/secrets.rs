//! A cluster's secrets as the rest of kiln sees them: the store the
//! inventory chose (where generated secrets and the run lock live), the file
//! store that `file:` references always read, and lazy resolution of every
//! reference the inventory makes. The stores themselves are `kiln-secrets`,
//! which knows nothing of the inventory; this module is the bridge.

use kiln_inventory::model::{SecretBackend, VaultAuthMethod};
use kiln_inventory::values::SecretRef;
use kiln_inventory::{Inventory, SecretUse};
use secrecy::SecretString;

use kiln_secrets::file::VALUE_KEY;
use kiln_secrets::generated::{CollectorTls, collector_tls};
use kiln_secrets::vault::{
    Credentials, TlsTrust, VaultClient, VaultSettings, VaultStore, clean_token, kv,
};
use kiln_secrets::{
    ClusterNames, Dirs, FileStore, LockError, LockRequest, RunLock, SecretStore, SecretsError,
    SshKeyPair, Store, cluster_ssh_keypair, value,
};

/// The secrets of one cluster. Opening it contacts nothing: Vault is logged
/// in to on first use, and references are read when asked for.
pub struct ClusterSecrets {
    cluster: String,
    file: FileStore,
    primary: Store,
    /// With the file backend, a Vault that cannot be set up (its login
    /// variable unset, say) only matters once a `vault:` reference is read.
    vault: Option<Result<VaultClient, String>>,
}

impl std::fmt::Debug for ClusterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSecrets")
            .field("cluster", &self.cluster)
            .field("file", &self.file)
            .field("vault", &self.vault)
            .finish_non_exhaustive()
    }
}

impl ClusterSecrets {
    /// Opens the stores `inventory.secrets` describes, in `dirs`.
    pub async fn open(inventory: &Inventory, dirs: &Dirs) -> Result<Self, SecretsError> {
        let cluster = inventory.cluster.name.as_str().to_owned();
        let file = FileStore::new(dirs, &cluster);
        let (primary, client) = match (inventory.secrets.backend, &inventory.secrets.vault) {
            (SecretBackend::File, None) => (Store::File(file.clone()), None),
            (SecretBackend::File, Some(vault)) => {
                let client = match vault_settings(vault, &file).await {
                    Ok(settings) => VaultClient::new(
                        &settings.address,
                        settings.namespace,
                        settings.trust,
                        settings.credentials,
                    )
                    .map_err(|error| error.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                (Store::File(file.clone()), Some(client))
            }
            (SecretBackend::Vault, Some(vault)) => {
                let store = VaultStore::new(vault_settings(vault, &file).await?, &cluster)?;
                let client = store.client().clone();
                (Store::Vault(store), Some(Ok(client)))
            }
            (SecretBackend::Vault, None) => {
                return Err(SecretsError::Config(
                    "`secrets.backend` is `vault` but `secrets.vault` is not set".to_owned(),
                ));
            }
        };
        Ok(Self {
            cluster,
            file,
            primary,
            vault: client,
        })
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Where generated secrets and the run lock live.
    pub fn store(&self) -> &Store {
        &self.primary
    }

    /// The file store, which `file:` references read whatever the backend.
    pub fn file_store(&self) -> &FileStore {
        &self.file
    }

    /// The Vault client, when `secrets.vault` is set and could be set up.
    pub fn vault(&self) -> Option<&VaultClient> {
        self.vault.as_ref().and_then(|client| client.as_ref().ok())
    }

    /// Takes the cluster's run lock for `command` (e.g. `kiln apply`) with
    /// a fresh run id, in the store the inventory chose. A held lock is
    /// [`LockError::Held`]: the CLI exits 3 with its message.
    pub async fn lock(&self, command: &str) -> Result<RunLock, LockError> {
        self.primary
            .lock(LockRequest::new(&self.cluster, command))
            .await
    }

    /// The collector's certificate and key, made on first use and kept in
    /// the store like every generated secret.
    pub async fn collector_tls(&self, inventory: &Inventory) -> Result<CollectorTls, SecretsError> {
        collector_tls(&self.primary, &cluster_names(inventory)).await
    }

    /// The SSH key pair kiln logs in to nodes with: the inventory's own
    /// `ssh.key` when it names one, else the cluster's generated key.
    pub async fn ssh_keypair(&self, inventory: &Inventory) -> Result<SshKeyPair, SecretsError> {
        let Some(reference) = inventory.ssh.as_ref().and_then(|ssh| ssh.key.as_ref()) else {
            return cluster_ssh_keypair(&self.primary, &cluster_names(inventory)).await;
        };
        let private = self.resolve_ref(reference, "ssh.key").await?;
        SshKeyPair::from_private(&private).map_err(|reason| SecretsError::Unresolved {
            reference: reference.to_string(),
            used_at: "ssh.key".to_owned(),
            reason,
        })
    }

    /// The value of one inventory reference.
    pub async fn resolve(&self, used: &SecretUse) -> Result<SecretString, SecretsError> {
        self.resolve_ref(&used.reference, &used.path.to_string())
            .await
    }

    /// The value of `reference`; `used_at` names the inventory field (or
    /// the purpose) for the error message.
    pub async fn resolve_ref(
        &self,
        reference: &SecretRef,
        used_at: &str,
    ) -> Result<SecretString, SecretsError> {
        let unresolved = |reason: String| SecretsError::Unresolved {
            reference: reference.to_string(),
            used_at: used_at.to_owned(),
            reason,
        };
        match reference {
            SecretRef::Env { var } => read_env(var).map_err(unresolved),
            SecretRef::File { name } => read_file_entry(&self.file, name)
                .await
                .map_err(|reason| unresolved(reason.to_string()))?
                .ok_or_else(|| {
                    unresolved(format!(
                        "{} has no entry `{name}`; add it with `kiln secrets set {name}`",
                        self.file.describe()
                    ))
                }),
            SecretRef::Vault { mount, path, key } => {
                let client = match &self.vault {
                    None => Err(unresolved(
                        "`secrets.vault` is not configured in the inventory".to_owned(),
                    )),
                    Some(Err(reason)) => {
                        Err(unresolved(format!("cannot use `secrets.vault`: {reason}")))
                    }
                    Some(Ok(client)) => Ok(client),
                }?;
                let secret = kv::read(client, mount, path)
                    .await
                    .map_err(|error| unresolved(error.to_string()))?
                    .ok_or_else(|| {
                        unresolved(format!(
                            "Vault {} has no secret at `{mount}/{path}` (KV v2 mount `{mount}`)",
                            client.address()
                        ))
                    })?;
                secret.data.get(key).cloned().ok_or_else(|| {
                    let keys: Vec<&str> = secret.data.keys().map(String::as_str).collect();
                    unresolved(format!(
                        "the secret at `{mount}/{path}` has no key `{key}` (it has: {})",
                        keys.join(", ")
                    ))
                })
            }
        }
    }
}

/// What kiln's generated secrets are named after, from the inventory.
pub fn cluster_names(inventory: &Inventory) -> ClusterNames {
    ClusterNames {
        cluster: inventory.cluster.name.as_str().to_owned(),
        ssh_user: inventory
            .ssh
            .as_ref()
            .map_or("kiln", |ssh| ssh.user.as_str())
            .to_owned(),
        collector_url: inventory
            .agent
            .as_ref()
            .and_then(|agent| agent.collector.resolve().ok())
            .map(|url| url.as_str().to_owned()),
    }
}

fn read_env(var: &str) -> Result<SecretString, String> {
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(format!("environment variable `{var}` is empty")),
        Ok(value) => Ok(SecretString::from(value)),
        Err(std::env::VarError::NotPresent) => {
            Err(format!("environment variable `{var}` is not set"))
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("environment variable `{var}` is not valid UTF-8"))
        }
    }
}

async fn read_file_entry(
    file: &FileStore,
    name: &str,
) -> Result<Option<SecretString>, SecretsError> {
    let Some(entry) = file.read(name).await? else {
        return Ok(None);
    };
    value(&entry, VALUE_KEY)
        .cloned()
        .map(Some)
        .map_err(SecretsError::Config)
}

/// Vault settings from the inventory. The credentials themselves must come
/// from the environment or the file store: Vault cannot hold its own key.
async fn vault_settings(
    vault: &kiln_inventory::model::Vault,
    file: &FileStore,
) -> Result<VaultSettings, SecretsError> {
    let address = vault
        .address
        .resolve()
        .map_err(|error| SecretsError::Config(format!("`secrets.vault.address`: {error}")))?;
    let trust = if !address.is_https() {
        if !is_loopback(address.as_str()) {
            return Err(SecretsError::Config(format!(
                "`secrets.vault.address` {} is plain http to another host, so the token \
                 would cross the network in clear text; use https",
                address.as_str()
            )));
        }
        TlsTrust::PlainLoopback
    } else if let Some(pin) = &vault.fingerprint {
        let pin = pin.resolve().map_err(|error| {
            SecretsError::Config(format!("`secrets.vault.fingerprint`: {error}"))
        })?;
        TlsTrust::Verified(kiln_tls::Trust::Pin(kiln_tls::Fingerprint::from_bytes(
            pin.0,
        )))
    } else if let Some(ca_file) = &vault.ca_file {
        TlsTrust::Verified(kiln_tls::Trust::CaFile(ca_file.clone()))
    } else {
        TlsTrust::Verified(kiln_tls::Trust::System)
    };
    let auth = &vault.auth;
    let credentials = match auth.method {
        VaultAuthMethod::Token => {
            let token = match &auth.token {
                Some(_) => credential(file, &auth.token, "token").await?,
                None => read_env("VAULT_TOKEN").map_err(|_| {
                    SecretsError::Config(
                        "`secrets.vault.auth.token` is not set and neither is VAULT_TOKEN"
                            .to_owned(),
                    )
                })?,
            };
            Credentials::Token(clean_token(&token))
        }
        VaultAuthMethod::Approle => Credentials::AppRole {
            mount: auth
                .approle_mount
                .clone()
                .unwrap_or_else(|| "approle".to_owned()),
            role_id: clean_token(&credential(file, &auth.role_id, "role_id").await?),
            secret_id: clean_token(&credential(file, &auth.secret_id, "secret_id").await?),
        },
    };
    Ok(VaultSettings {
        address: address.as_str().to_owned(),
        namespace: vault.namespace.clone(),
        mount: vault.mount.clone(),
        trust,
        credentials,
    })
}

/// A Vault login credential: from the environment or the file store only.
async fn credential(
    file: &FileStore,
    reference: &Option<SecretRef>,
    field: &'static str,
) -> Result<SecretString, SecretsError> {
    let path = format!("secrets.vault.auth.{field}");
    match reference {
        Some(SecretRef::Vault { .. }) => Err(SecretsError::Config(format!(
            "`{path}` cannot be a `vault:` reference: kiln needs it to log in to Vault"
        ))),
        Some(SecretRef::Env { var }) => read_env(var).map_err(|reason| SecretsError::Unresolved {
            reference: format!("env:{var}"),
            used_at: path,
            reason,
        }),
        Some(SecretRef::File { name }) => {
            read_file_entry(file, name)
                .await?
                .ok_or_else(|| SecretsError::Unresolved {
                    reference: format!("file:{name}"),
                    reason: format!(
                        "{} has no entry `{name}`; add it with `kiln secrets set {name}`",
                        file.describe()
                    ),
                    used_at: path,
                })
        }
        None => Err(SecretsError::Config(format!("`{path}` is required"))),
    }
}

/// Whether an `http://` URL points at this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url.trim_start_matches("http://");
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_use_plain_http() {
        assert!(is_loopback("http://127.0.0.1:8200"));
        assert!(is_loopback("http://localhost:8200/"));
        assert!(is_loopback("http://[::1]:8200"));
        assert!(!is_loopback("http://vault.lan:8200"));
        assert!(!is_loopback("http://10.0.0.1"));
    }
}

#[cfg(test)]
mod hygiene_tests {
    use secrecy::ExposeSecret;

    use super::*;
    use kiln_secrets::Cas;
    use kiln_secrets::file::single_value;

    const CANARY: &str = "s.CANARY-debug-7d41e";

    fn inventory(extra: &str) -> Inventory {
        let text = format!(
            "
cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: node1, role: host, ip: 10.0.0.10, baremetal: {{}}}}
{extra}"
        );
        kiln_inventory::parse("kiln.yaml", &text).unwrap()
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_vault_token() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let inventory = inventory(
            "secrets:
  backend: vault
  vault:
    address: http://127.0.0.1:1
    auth: {method: token, token: 'file:vault-token'}
",
        );
        FileStore::new(&dirs, "home")
            .write(
                "vault-token",
                single_value(format!("  {CANARY}\n").into()),
                Cas::Any,
            )
            .await
            .unwrap();
        let secrets = ClusterSecrets::open(&inventory, &dirs).await.unwrap();
        let Store::Vault(store) = secrets.store() else {
            panic!("the vault backend was not chosen");
        };
        let credentials = kiln_secrets::vault::Credentials::AppRole {
            mount: "approle".into(),
            role_id: CANARY.into(),
            secret_id: CANARY.into(),
        };
        for text in [
            format!("{credentials:?}"),
            format!(
                "{:?}",
                kiln_secrets::vault::Credentials::Token(CANARY.into())
            ),
            format!("{secrets:?}"),
            format!("{secrets:#?}"),
            format!("{store:?}"),
            format!("{:?}", store.client()),
        ] {
            assert!(
                text.contains("127.0.0.1") || text.contains("approle") || text.contains("Token"),
                "{text}"
            );
            assert!(!text.contains("CANARY"), "{text}");
        }
    }

    #[tokio::test]
    async fn an_unusable_vault_matters_only_to_vault_references() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let inventory = inventory(
            "ssh: {key: 'vault:secret/kiln/ssh#key'}
secrets:
  vault:
    address: https://vault.lan:8200
    auth: {method: token, token: 'env:KILN_TEST_SURELY_UNSET_TOKEN'}
",
        );
        let secrets = ClusterSecrets::open(&inventory, &dirs).await.unwrap();
        assert!(matches!(secrets.store(), Store::File(_)));
        assert!(secrets.vault().is_none());
        let used = inventory.secret_references().remove(0);
        let error = secrets.resolve(&used).await.unwrap_err().to_string();
        assert!(error.contains("`vault:secret/kiln/ssh#key`"), "{error}");
        assert!(error.contains("cannot use `secrets.vault`"), "{error}");
        assert!(error.contains("KILN_TEST_SURELY_UNSET_TOKEN"), "{error}");
    }

    #[tokio::test]
    async fn a_missing_reference_names_itself_and_where_it_is_used() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let inventory = inventory("ssh: {key: 'file:ssh/missing'}\n");
        let secrets = ClusterSecrets::open(&inventory, &dirs).await.unwrap();
        let used = inventory.secret_references().remove(0);
        let error = secrets.resolve(&used).await.unwrap_err().to_string();
        assert!(error.contains("`file:ssh/missing`"), "{error}");
        assert!(error.contains("`ssh.key`"), "{error}");
        assert!(error.contains("kiln secrets set ssh/missing"), "{error}");

        secrets
            .file_store()
            .write("ssh/missing", single_value("v".into()), Cas::Any)
            .await
            .unwrap();
        let value = secrets.resolve(&used).await.unwrap();
        assert_eq!(value.expose_secret(), "v");

        let unset = SecretRef::Env {
            var: "KILN_TEST_SURELY_UNSET_VAR".into(),
        };
        let error = secrets
            .resolve_ref(&unset, "proxmox.auth.token")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("env:KILN_TEST_SURELY_UNSET_VAR")
                && error.contains("proxmox.auth.token")
                && error.contains("is not set"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod ssh_tests {
    use super::*;
    use kiln_secrets::Cas;
    use kiln_secrets::file::single_value;

    #[tokio::test]
    async fn the_inventory_key_wins_over_the_generated_one() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let base = "cluster: {name: home}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
nodes:
  - {name: node1, role: host, ip: 10.0.0.10, baremetal: {}}
";
        let plain = kiln_inventory::parse("kiln.yaml", base).unwrap();
        let secrets = ClusterSecrets::open(&plain, &dirs).await.unwrap();
        let generated = secrets.ssh_keypair(&plain).await.unwrap();
        assert!(generated.public_key.ends_with("kiln@home"));

        let own = kiln_secrets::generated::cluster_ssh_keypair(
            &FileStore::new(
                &Dirs {
                    state: root.path().join("other"),
                    config: root.path().join("config"),
                },
                "other",
            ),
            &cluster_names(&plain),
        )
        .await
        .unwrap();
        secrets
            .file_store()
            .write("ssh/own", single_value(own.private_key.clone()), Cas::Any)
            .await
            .unwrap();
        let with_key = kiln_inventory::parse(
            "kiln.yaml",
            &format!("{base}ssh: {{key: 'file:ssh/own'}}\n"),
        )
        .unwrap();
        let chosen = secrets.ssh_keypair(&with_key).await.unwrap();
        assert_eq!(chosen.public_key, own.public_key);
        assert_ne!(chosen.public_key, generated.public_key);
    }
}
