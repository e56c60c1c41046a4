//! The cluster's SSH key pair for the kiln user: ed25519, in the OpenSSH
//! formats (`-----BEGIN OPENSSH PRIVATE KEY-----` and `ssh-ed25519 AAAA…`),
//! encoded with the ssh-key version russh pins so the SSH client can load it
//! without conversion.

use secrecy::{ExposeSecret, SecretString};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::{ClusterNames, get_or_create, random_bytes, stored};
use crate::error::SecretsError;
use crate::store::{Data, SecretStore};

/// A key pair as kiln uses it: cloud-init gets the public key, the SSH
/// client the private one.
#[derive(Debug, Clone)]
pub struct SshKeyPair {
    /// OpenSSH private key (PEM-like text, unencrypted).
    pub private_key: SecretString,
    /// One `authorized_keys` line: `ssh-ed25519 AAAA… kiln@<cluster>`.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

const WHAT: &str = "the cluster's SSH key";

/// The entry name of the SSH key for `user`.
pub fn entry_name(user: &str) -> String {
    format!("generated/ssh/{user}")
}

/// The cluster's generated SSH key pair for the kiln user: created on first
/// use, the same on every later call. When the inventory names its own key
/// (`ssh.key`), that key is the one to use, not this one: kiln's
/// `ClusterSecrets::ssh_keypair` picks the right one.
pub async fn cluster_ssh_keypair<S: SecretStore>(
    store: &S,
    names: &ClusterNames,
) -> Result<SshKeyPair, SecretsError> {
    let name = entry_name(&names.ssh_user);
    let comment = format!("kiln@{}", names.cluster);
    let data = get_or_create(store, &name, || generate(&comment)).await?;
    let private = stored(&data, &name, "private_key", WHAT)?;
    SshKeyPair::from_private(private).map_err(|reason| SecretsError::BadStoredValue {
        what: WHAT,
        name,
        reason,
    })
}

pub(super) fn generate(comment: &str) -> Result<Data, SecretsError> {
    let seed = random_bytes::<32>(WHAT)?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    let failed = |error: ssh_key::Error| SecretsError::Generate {
        what: WHAT,
        reason: error.to_string(),
    };
    let key = PrivateKey::new(KeypairData::Ed25519(keypair), comment).map_err(failed)?;
    let private = key.to_openssh(LineEnding::LF).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    Ok(Data::from([
        (
            "private_key".to_owned(),
            SecretString::from(private.as_str()),
        ),
        ("public_key".to_owned(), SecretString::from(public)),
    ]))
}

impl SshKeyPair {
    /// The pair of an OpenSSH private key; the public half is derived, so it
    /// always matches. The error never quotes the key.
    pub fn from_private(private: &SecretString) -> Result<Self, String> {
        let key = PrivateKey::from_openssh(private.expose_secret().trim())
            .map_err(|_| "not an OpenSSH private key".to_owned())?;
        if key.is_encrypted() {
            return Err(
                "the private key is passphrase-protected; kiln needs it unencrypted".to_owned(),
            );
        }
        let public = key.public_key();
        Ok(Self {
            private_key: private.clone(),
            public_key: public
                .to_openssh()
                .map_err(|error| format!("cannot encode the public key: {error}"))?,
            fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_openssh_ed25519_and_round_trips() {
        let data = generate("kiln@home").unwrap();
        let pair = SshKeyPair::from_private(&data["private_key"]).unwrap();
        assert!(pair.public_key.starts_with("ssh-ed25519 AAAA"));
        assert!(pair.public_key.ends_with(" kiln@home"));
        assert_eq!(pair.public_key, data["public_key"].expose_secret());
        assert!(pair.fingerprint.starts_with("SHA256:"));
        assert!(
            pair.private_key
                .expose_secret()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        assert!(!format!("{pair:?}").contains("OPENSSH PRIVATE"));
    }

    #[test]
    fn two_keys_differ() {
        let a = generate("a").unwrap();
        let b = generate("a").unwrap();
        assert_ne!(
            a["public_key"].expose_secret(),
            b["public_key"].expose_secret()
        );
    }
}
