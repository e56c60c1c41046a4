//! Logging in with a key: the cluster's key from the secrets store, a key
//! file, or whatever an ssh-agent holds. Errors name the source (a file, the
//! agent's socket), never the key itself.

use std::path::PathBuf;
use std::sync::Arc;

use russh::MethodSet;
use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use secrecy::{ExposeSecret, SecretString};

use crate::error::SshError;
use crate::host_keys::fingerprint;

/// Where the private key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An OpenSSH private key held in memory, e.g. the cluster's key from
    /// kiln's secrets store.
    Secret(SecretString),
    /// A private key file (OpenSSH or PKCS#8), with its passphrase if any.
    File {
        path: PathBuf,
        passphrase: Option<SecretString>,
    },
    /// An ssh-agent: this socket, or `$SSH_AUTH_SOCK` when `None`. Every
    /// key it offers is tried in turn.
    Agent { socket: Option<PathBuf> },
}

/// Authenticates `user` on a connected handle with `key`.
pub(super) async fn authenticate<H: russh::client::Handler>(
    handle: &mut Handle<H>,
    at: &str,
    user: &str,
    key: &KeySource,
) -> Result<(), SshError> {
    match key {
        KeySource::Secret(text) => {
            let key = decode(at, "the private key from the secrets store", text, None)?;
            with_private_key(handle, at, user, key).await
        }
        KeySource::File { path, passphrase } => {
            let what = format!("key file {}", path.display());
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|error| SshError::Key {
                    at: at.to_owned(),
                    what: what.clone(),
                    reason: error.to_string(),
                })?;
            let key = decode(at, &what, &SecretString::from(text), passphrase.as_ref())?;
            with_private_key(handle, at, user, key).await
        }
        KeySource::Agent { socket } => with_agent(handle, at, user, socket.as_ref()).await,
    }
}

fn decode(
    at: &str,
    what: &str,
    text: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<PrivateKey, SshError> {
    russh::keys::decode_secret_key(
        text.expose_secret(),
        passphrase.map(|secret| secret.expose_secret()),
    )
    .map_err(|_| SshError::Key {
        at: at.to_owned(),
        what: what.to_owned(),
        reason: match passphrase {
            Some(_) => "not a private key kiln can read, or the passphrase is wrong".to_owned(),
            None => "not a private key kiln can read (OpenSSH or PKCS#8 ed25519/ECDSA), \
                     or it needs a passphrase"
                .to_owned(),
        },
    })
}

async fn with_private_key<H: russh::client::Handler>(
    handle: &mut Handle<H>,
    at: &str,
    user: &str,
    key: PrivateKey,
) -> Result<(), SshError> {
    let tried = format!("the key {}", fingerprint(key.public_key()));
    let result = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .map_err(|source| SshError::Protocol {
            at: at.to_owned(),
            step: format!("auth as {user}"),
            source: Box::new(source),
        })?;
    accepted(result, at, tried)
}

async fn with_agent<H: russh::client::Handler>(
    handle: &mut Handle<H>,
    at: &str,
    user: &str,
    socket: Option<&PathBuf>,
) -> Result<(), SshError> {
    let agent_error = |what: String, reason: String| SshError::Key {
        at: at.to_owned(),
        what,
        reason,
    };
    let (agent, what) = match socket {
        Some(path) => (
            AgentClient::connect_uds(path)
                .await
                .map(AgentClient::dynamic),
            format!("ssh-agent at {}", path.display()),
        ),
        None => (
            AgentClient::connect_env().await.map(AgentClient::dynamic),
            "ssh-agent ($SSH_AUTH_SOCK)".to_owned(),
        ),
    };
    let mut agent = agent.map_err(|error| agent_error(what.clone(), error.to_string()))?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|error| agent_error(what.clone(), error.to_string()))?;
    let keys: Vec<_> = identities
        .into_iter()
        .filter_map(|identity| match identity {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(agent_error(what, "holds no keys".to_owned()));
    }
    let mut accepts = String::new();
    for key in &keys {
        let result = handle
            .authenticate_publickey_with(user, key.clone(), None, &mut agent)
            .await
            .map_err(|error| agent_error(what.clone(), error.to_string()))?;
        match result {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => accepts = methods(&remaining_methods),
        }
    }
    let fingerprints: Vec<String> = keys.iter().map(fingerprint).collect();
    Err(SshError::AuthRejected {
        at: at.to_owned(),
        tried: format!("every key of the {what} ({})", fingerprints.join(", ")),
        accepts,
    })
}

fn accepted(result: AuthResult, at: &str, tried: String) -> Result<(), SshError> {
    match result {
        AuthResult::Success => Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => Err(SshError::AuthRejected {
            at: at.to_owned(),
            tried,
            accepts: methods(&remaining_methods),
        }),
    }
}

fn methods(set: &MethodSet) -> String {
    let names: Vec<&str> = set.iter().map(<&str>::from).collect();
    if names.is_empty() {
        "nothing more".to_owned()
    } else {
        names.join(", ")
    }
}
