//! Random bearer tokens: one per host for its agent (the collector keeps
//! only the SHA-256, so a leaked collector database does not let anyone
//! report as a host), and the K3s cluster token.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{get_or_create, random_bytes, stored};
use crate::error::SecretsError;
use crate::store::{Data, SecretStore};

/// A host's agent token and the hash the collector checks it against.
#[derive(Debug, Clone)]
pub struct AgentToken {
    pub node: String,
    pub token: SecretString,
    /// Lower-case hex SHA-256 of the token's UTF-8 bytes.
    pub sha256: String,
}

const AGENT: &str = "an agent token";
const K3S: &str = "the K3s token";

pub fn agent_entry(node: &str) -> String {
    format!("generated/agent/{node}")
}

pub const K3S_ENTRY: &str = "generated/k3s/token";

/// The hex SHA-256 of a token, as the collector stores it.
pub fn token_sha256(token: &SecretString) -> String {
    hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
}

/// 32 random bytes as 64 hex characters: no character needs quoting in a
/// header, a YAML file or a shell.
pub(super) fn random_token(what: &'static str) -> Result<Data, SecretsError> {
    let bytes = random_bytes::<32>(what)?;
    let token = SecretString::from(hex::encode(&bytes[..]));
    let hash = token_sha256(&token);
    Ok(Data::from([
        ("token".to_owned(), token),
        ("sha256".to_owned(), SecretString::from(hash)),
    ]))
}

/// The agent token of `node`, created on first use.
pub async fn agent_token<S: SecretStore>(
    store: &S,
    node: &str,
) -> Result<AgentToken, SecretsError> {
    let name = agent_entry(node);
    let data = get_or_create(store, &name, || random_token(AGENT)).await?;
    let token = stored(&data, &name, "token", AGENT)?.clone();
    Ok(AgentToken {
        node: node.to_owned(),
        sha256: token_sha256(&token),
        token,
    })
}

/// The agent tokens of `nodes`, by node name.
pub async fn agent_tokens<S: SecretStore>(
    store: &S,
    nodes: impl IntoIterator<Item = &str>,
) -> Result<BTreeMap<String, AgentToken>, SecretsError> {
    let mut tokens = BTreeMap::new();
    for node in nodes {
        tokens.insert(node.to_owned(), agent_token(store, node).await?);
    }
    Ok(tokens)
}

/// The K3s cluster token (servers and agents join with it), created on
/// first use. Batch 2's K3s bootstrap reads it.
pub async fn k3s_token<S: SecretStore>(store: &S) -> Result<SecretString, SecretsError> {
    let data = get_or_create(store, K3S_ENTRY, || random_token(K3S)).await?;
    Ok(stored(&data, K3S_ENTRY, "token", K3S)?.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_sha256_of_the_token() {
        let data = random_token(AGENT).unwrap();
        let token = &data["token"];
        assert_eq!(token.expose_secret().len(), 64);
        assert_eq!(data["sha256"].expose_secret(), token_sha256(token));
        assert_eq!(
            token_sha256(&SecretString::from("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
