//! The agents' bearer tokens: one active token per node, kept as a SHA-256
//! so a copy of the database does not let anyone report as a host. Usable
//! without a running server: `kiln agent token` opens the database, issues,
//! and closes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::db::{self, now_ms};
use crate::error::CollectorError;

/// Every token starts with this, so one found in a log or a paste is
/// recognisable (and secret scanners can match it).
pub const TOKEN_PREFIX: &str = "kiln_at_";

/// Whom a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub cluster: String,
    pub node: String,
}

/// A token's owner and which issue it is: each issue starts a new sequence
/// space, so a reinstalled agent that counts from 1 again is not a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub identity: NodeIdentity,
    pub token_id: i64,
}

/// Node `node` of cluster `home` holding token `token_id` (unit tests).
#[cfg(test)]
pub(crate) fn test_token(node: &str, token_id: i64) -> VerifiedToken {
    VerifiedToken {
        identity: NodeIdentity {
            cluster: "home".into(),
            node: node.into(),
        },
        token_id,
    }
}

/// A token's SHA-256: what the registry keeps and looks tokens up by.
/// Not secret: it cannot be turned back into the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &SecretString) -> Self {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest(&SHA256, token.expose_secret().as_bytes()).as_ref());
        Self(hash)
    }
}

/// The registry on the collector's database.
pub struct TokenRegistry {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl TokenRegistry {
    /// Opens (creating it if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, CollectorError> {
        Ok(Self {
            path: path.to_owned(),
            connection: Mutex::new(db::open(path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new token for `node`, replacing any it had. Shown once: only its
    /// hash is kept.
    pub fn issue(&self, cluster: &str, node: &str) -> Result<SecretString, CollectorError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| CollectorError::Random {
                what: "an agent token",
            })?;
        let token = SecretString::from(format!(
            "{TOKEN_PREFIX}{}",
            Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())).as_str()
        ));
        self.replace(cluster, node, &TokenHash::of(&token))?;
        Ok(token)
    }

    /// Makes `hash` the node's one token hash.
    fn replace(&self, cluster: &str, node: &str, hash: &TokenHash) -> Result<(), CollectorError> {
        let mut connection = self.lock();
        // Delete and insert rather than update: AUTOINCREMENT then gives the
        // new token an id no earlier token of any node ever had.
        let transaction = connection
            .transaction()
            .map_err(CollectorError::sqlite(&self.path))?;
        transaction
            .execute(
                "DELETE FROM tokens WHERE cluster = ?1 AND node = ?2",
                params![cluster, node],
            )
            .and_then(|_| {
                transaction.execute(
                    "INSERT INTO tokens (cluster, node, sha256, issued_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![cluster, node, hash.0.as_slice(), db::to_sql(now_ms())],
                )
            })
            .and_then(|_| transaction.commit())
            .map_err(CollectorError::sqlite(&self.path))
    }

    /// Removes `node`'s token and its latest report (the node is gone);
    /// `false` when it had none. A running collector refuses the token from
    /// the next request on and drops the node from its listing within seconds.
    pub fn revoke(&self, cluster: &str, node: &str) -> Result<bool, CollectorError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction()
            .map_err(CollectorError::sqlite(&self.path))?;
        let removed = transaction
            .execute(
                "DELETE FROM tokens WHERE cluster = ?1 AND node = ?2",
                params![cluster, node],
            )
            .and_then(|removed| {
                transaction.execute(
                    "DELETE FROM latest WHERE cluster = ?1 AND node = ?2",
                    params![cluster, node],
                )?;
                transaction.commit()?;
                Ok(removed)
            })
            .map_err(CollectorError::sqlite(&self.path))?;
        Ok(removed > 0)
    }

    /// Makes `token` (kiln's stored token for the node, the same on every
    /// rebuild) the node's one active token. A node already holding exactly
    /// this token keeps its row, so its reports' sequence carries on.
    pub fn register(
        &self,
        cluster: &str,
        node: &str,
        token: &SecretString,
    ) -> Result<(), CollectorError> {
        if self
            .verify(token)?
            .is_some_and(|held| held.identity.cluster == cluster && held.identity.node == node)
        {
            return Ok(());
        }
        self.replace(cluster, node, &TokenHash::of(token))
    }

    /// Whose token this is, or `None` for a token that was never issued or
    /// was replaced or revoked. The lookup is by hash, so no comparison
    /// ever touches the secret itself.
    pub fn verify(&self, token: &SecretString) -> Result<Option<VerifiedToken>, CollectorError> {
        self.verify_hash(&TokenHash::of(token))
    }

    /// [`Self::verify`] for a token already hashed.
    pub fn verify_hash(&self, hash: &TokenHash) -> Result<Option<VerifiedToken>, CollectorError> {
        self.lock()
            .prepare_cached("SELECT id, cluster, node FROM tokens WHERE sha256 = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([hash.0.as_slice()], |row| {
                        Ok(VerifiedToken {
                            token_id: row.get(0)?,
                            identity: NodeIdentity {
                                cluster: row.get(1)?,
                                node: row.get(2)?,
                            },
                        })
                    })
                    .optional()
            })
            .map_err(CollectorError::sqlite(&self.path))
    }

    /// Every node that holds a token, with the token's id.
    pub fn nodes(&self) -> Result<Vec<(NodeIdentity, i64)>, CollectorError> {
        self.lock()
            .prepare_cached("SELECT cluster, node, id FROM tokens ORDER BY cluster, node")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok((
                            NodeIdentity {
                                cluster: row.get(0)?,
                                node: row.get(1)?,
                            },
                            row.get(2)?,
                        ))
                    })?
                    .collect()
            })
            .map_err(CollectorError::sqlite(&self.path))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for TokenRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenRegistry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, TokenRegistry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = TokenRegistry::open(&dir.path().join("collector/collector.db")).unwrap();
        (dir, registry)
    }

    #[test]
    fn an_issued_token_verifies_as_its_node() {
        let (_dir, registry) = registry();
        let token = registry.issue("home", "cp1").unwrap();
        assert!(token.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(token.expose_secret().len(), TOKEN_PREFIX.len() + 43);
        let verified = registry.verify(&token).unwrap().unwrap();
        assert_eq!(verified.identity.cluster, "home");
        assert_eq!(verified.identity.node, "cp1");
        assert!(registry.verify(&"kiln_at_nope".into()).unwrap().is_none());
    }

    #[test]
    fn issuing_again_replaces_the_token_and_starts_a_new_sequence_space() {
        let (_dir, registry) = registry();
        let first = registry.issue("home", "cp1").unwrap();
        let first_id = registry.verify(&first).unwrap().unwrap().token_id;
        let second = registry.issue("home", "cp1").unwrap();
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert!(registry.verify(&first).unwrap().is_none());
        let second_id = registry.verify(&second).unwrap().unwrap().token_id;
        assert!(second_id > first_id);
        assert_eq!(registry.nodes().unwrap().len(), 1);
    }

    #[test]
    fn a_revoked_token_no_longer_verifies() {
        let (_dir, registry) = registry();
        let token = registry.issue("home", "cp1").unwrap();
        let other = registry.issue("home", "w1").unwrap();
        assert!(registry.revoke("home", "cp1").unwrap());
        assert!(!registry.revoke("home", "cp1").unwrap());
        assert!(registry.verify(&token).unwrap().is_none());
        assert!(registry.verify(&other).unwrap().is_some());
    }

    #[test]
    fn only_the_hash_is_stored() {
        let (dir, registry) = registry();
        let token = registry.issue("home", "cp1").unwrap();
        drop(registry);
        let bytes = std::fs::read(dir.path().join("collector/collector.db")).unwrap();
        let wal = std::fs::read(dir.path().join("collector/collector.db-wal")).unwrap_or_default();
        let needle = token.expose_secret().as_bytes();
        for file in [&bytes, &wal] {
            assert!(!file.windows(needle.len()).any(|window| window == needle));
        }
        let debug = format!(
            "{registry:?}",
            registry = TokenRegistry::open(&dir.path().join("collector/collector.db")).unwrap()
        );
        assert!(!debug.contains(token.expose_secret()));
    }
}
