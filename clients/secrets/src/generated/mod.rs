//! Secrets kiln makes itself when the inventory does not give them, written
//! to the store (under [`PREFIX`], apart from what users store) on first use and read back on every later run: that is what
//! lets `kiln rebuild` keep the cluster's identity (its SSH key, the agents'
//! tokens, the collector's certificate, the iSCSI CHAP secret, later the K3s token and Talos PKI).

mod chap;
mod csi_key;
mod later;
mod rotate;
mod ssh;
mod tls;
mod tokens;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub use chap::{CHAP_ENTRY, ChapCredential, truenas_chap};
pub use csi_key::{CSI_KEY_ENTRY, store_truenas_csi_key, truenas_csi_key};
pub use later::{flux_deploy_key, import_flux_deploy_key, talos_secrets_bundle};
pub use rotate::{Generated, rotate};
pub use ssh::{SshKeyPair, cluster_ssh_keypair};
pub use tls::{CollectorTls, ENTRY as COLLECTOR_TLS_ENTRY, collector_tls, new_collector_tls};
pub use tokens::{AgentToken, agent_token, agent_tokens, k3s_token, token_sha256};

use crate::error::SecretsError;

/// Every generated entry's name starts with this, so a user's `file:` entry
/// can never be mistaken for one (or rotated as one).
pub const PREFIX: &str = "generated/";

/// What the generated secrets are named after. kiln fills it from the
/// inventory; nothing here reads the inventory itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    /// The cluster's name: the SSH key's comment, the certificate's subject.
    pub cluster: String,
    /// The user kiln logs in as (the SSH key's entry is per user).
    pub ssh_user: String,
    /// The URL agents send reports to, when the cluster has a collector:
    /// its host is a name the collector's certificate must carry.
    pub collector_url: Option<String>,
}
use crate::store::{Cas, Data, SecretStore};

/// The entry `name`, created by `generate` if it does not exist yet. When
/// two runs race to create it, the loser reads the winner's: both then use
/// the same secret.
async fn get_or_create<S: SecretStore>(
    store: &S,
    name: &str,
    generate: impl FnOnce() -> Result<Data, SecretsError>,
) -> Result<Data, SecretsError> {
    if let Some(entry) = store.read(name).await? {
        return Ok(entry.data);
    }
    let data = generate()?;
    match store.write(name, clone_data(&data), Cas::Absent).await {
        Ok(_) => {
            tracing::info!(entry = name, store = %store.describe(), "generated and stored a new secret");
            Ok(data)
        }
        Err(SecretsError::CasConflict { .. }) => store
            .read(name)
            .await?
            .map(|entry| entry.data)
            .ok_or_else(|| SecretsError::Config(format!("`{name}` vanished while being created"))),
        Err(error) => Err(error),
    }
}

fn clone_data(data: &Data) -> Data {
    data.iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `N` bytes from the operating system's CSPRNG.
fn random_bytes<const N: usize>(what: &'static str) -> Result<Zeroizing<[u8; N]>, SecretsError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| SecretsError::Generate {
            what,
            reason: "the system random number generator failed".to_owned(),
        })?;
    Ok(bytes)
}

/// A stored value that must be present in an entry kiln wrote itself.
fn stored<'a>(
    data: &'a Data,
    name: &str,
    key: &str,
    what: &'static str,
) -> Result<&'a secrecy::SecretString, SecretsError> {
    data.get(key).ok_or_else(|| SecretsError::BadStoredValue {
        what,
        name: name.to_owned(),
        reason: format!("the key `{key}` is missing; rotate it with `kiln secrets rotate {name}`"),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::{Dirs, FileStore};

    fn setup() -> (tempfile::TempDir, FileStore, ClusterNames) {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let names = ClusterNames {
            cluster: "home".to_owned(),
            ssh_user: "ops".to_owned(),
            collector_url: Some("https://10.0.0.5:9443".to_owned()),
        };
        (root, FileStore::new(&dirs, "home"), names)
    }

    #[tokio::test]
    async fn generated_secrets_are_made_once_and_reused() {
        let (_root, store, names) = setup();
        let first = cluster_ssh_keypair(&store, &names).await.unwrap();
        let again = cluster_ssh_keypair(&store, &names).await.unwrap();
        assert_eq!(first.public_key, again.public_key);
        assert!(first.public_key.ends_with(" kiln@home"));
        assert!(store.read("generated/ssh/ops").await.unwrap().is_some());

        let token = agent_token(&store, "node1").await.unwrap();
        assert_eq!(
            agent_token(&store, "node1")
                .await
                .unwrap()
                .token
                .expose_secret(),
            token.token.expose_secret()
        );
        assert_eq!(token.sha256, token_sha256(&token.token));
        let all = agent_tokens(&store, ["node1"]).await.unwrap();
        assert_eq!(all["node1"].sha256, token.sha256);

        let tls = collector_tls(&store, &names).await.unwrap();
        assert_eq!(tls.names[0], "10.0.0.5");
        let tls_again = collector_tls(&store, &names).await.unwrap();
        assert_eq!(tls.fingerprint, tls_again.fingerprint);

        let k3s = k3s_token(&store).await.unwrap();
        assert_eq!(
            k3s_token(&store).await.unwrap().expose_secret(),
            k3s.expose_secret()
        );
        let bundle = talos_secrets_bundle(&store, || Ok("bundle: 1".into()))
            .await
            .unwrap();
        let kept = talos_secrets_bundle(&store, || panic!("made twice"))
            .await
            .unwrap();
        assert_eq!(bundle.expose_secret(), kept.expose_secret());
    }

    #[tokio::test]
    async fn rotation_replaces_the_value_and_bumps_the_version() {
        let (_root, store, names) = setup();
        let before = cluster_ssh_keypair(&store, &names).await.unwrap();
        let version = rotate(&store, &names, "generated/ssh/ops").await.unwrap();
        assert_eq!(version, 2);
        let after = cluster_ssh_keypair(&store, &names).await.unwrap();
        assert_ne!(before.public_key, after.public_key);
        let error = rotate(&store, &names, "vault-secret-id")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a secret kiln generates"), "{error}");
    }

    #[tokio::test]
    async fn a_flux_deploy_key_is_imported_and_read_back() {
        let (_root, store, _names) = setup();
        assert!(flux_deploy_key(&store).await.unwrap().is_none());
        let key = ssh::generate("flux").unwrap();
        let public = import_flux_deploy_key(&store, &key["private_key"])
            .await
            .unwrap();
        let pair = flux_deploy_key(&store).await.unwrap().unwrap();
        assert_eq!(pair.public_key, public);
        let error = import_flux_deploy_key(&store, &"not a key".into())
            .await
            .unwrap_err()
            .to_string();
        assert!(!error.contains("not a key"), "{error}");
    }
}
