//! User-linked API keys (`plugins/api_key.py` of TS-25.10.6). A key is `<id>-<64
//! alphanumerics>`; the whole key is answered only by `api_key.create` and by
//! `api_key.update` with `reset: true` (`ApiKeyEntryWithKey`); queries show the entry
//! without it, and `keyhash` masked. A key whose user is gone is reported revoked
//! ("User does not exist") and logs in no more.
//!
//! Key 1 is the emulator's own bootstrap key: its secret is `auth.rs`'s, and the emulator
//! does not let the API change or delete it (it is what tests and kiln log in with).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::accounts::Accounts;
use crate::rpc::{FieldError, RpcError};

/// The bootstrap key's id (`auth.rs`).
pub(crate) const BOOTSTRAP_KEY_ID: u64 = 1;
/// `utils/user_api_key.py` `PAM_TDB_MAX_KEYS`.
const MAX_KEYS_PER_USER: usize = 10;
/// What a `Secret` field serializes to (`api/base/types/string.py` `SECRET_VALUE`).
const SECRET_VALUE: &str = "********";

struct StoredKey {
    name: String,
    /// The user's `id` (`user_identifier` of a local user).
    user_id: u64,
    /// None for the bootstrap key, whose secret `auth.rs` keeps.
    secret: Option<String>,
    created_ms: u64,
    revoked: bool,
    revoked_reason: Option<String>,
}

/// The API key table.
#[derive(Default)]
pub(crate) struct ApiKeys {
    keys: BTreeMap<u64, StoredKey>,
    last_id: u64,
}

impl fmt::Debug for ApiKeys {
    // Never the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How a key presented at login fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyCheck {
    /// No key has this id.
    UnknownId,
    /// The bootstrap key's id: `auth.rs` decides.
    Bootstrap,
    /// The secret is not the key's.
    Wrong,
    /// Revoked (reset keys are not; keys of deleted users are).
    Revoked,
    /// The key of this user id.
    Valid(u64),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn new_secret() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiKeys {
    /// Key 1, the emulator's own, for user `user_id`.
    pub(crate) fn seed_bootstrap(&mut self, user_id: u64) {
        self.last_id = BOOTSTRAP_KEY_ID;
        self.keys.insert(
            BOOTSTRAP_KEY_ID,
            StoredKey {
                name: "kiln-lab".into(),
                user_id,
                secret: None,
                created_ms: now_ms(),
                revoked: false,
                revoked_reason: None,
            },
        );
    }

    /// The ids of a user's keys (`user.query`'s `api_keys`).
    pub(crate) fn ids_of(&self, user_id: u64) -> Vec<u64> {
        self.keys
            .iter()
            .filter(|(_, k)| k.user_id == user_id)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Checks a presented key `<id>-<secret>`.
    pub(crate) fn check(&self, presented: &str, users_exist: impl Fn(u64) -> bool) -> KeyCheck {
        let Some((id, secret)) = presented.split_once('-') else {
            return KeyCheck::UnknownId;
        };
        let Some((id, key)) = id
            .parse::<u64>()
            .ok()
            .and_then(|id| Some((id, self.keys.get(&id)?)))
        else {
            return KeyCheck::UnknownId;
        };
        if id == BOOTSTRAP_KEY_ID {
            return KeyCheck::Bootstrap;
        }
        match &key.secret {
            Some(s) if constant_time_eq(s.as_bytes(), secret.as_bytes()) => {}
            _ => return KeyCheck::Wrong,
        }
        if key.revoked || !users_exist(key.user_id) {
            return KeyCheck::Revoked;
        }
        KeyCheck::Valid(key.user_id)
    }

    /// `api_key.revoke`: for good, until a reset.
    pub(crate) fn revoke(&mut self, presented: &str, reason: &str) {
        let id = presented
            .split('-')
            .next()
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(key) = id.and_then(|id| self.keys.get_mut(&id)) {
            key.revoked = true;
            key.revoked_reason = Some(reason.into());
        }
    }

    /// Whether `presented` is a key this table made (not the bootstrap key).
    pub(crate) fn is_user_key(&self, presented: &str) -> bool {
        presented
            .split('-')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
            .is_some_and(|id| id != BOOTSTRAP_KEY_ID && self.keys.contains_key(&id))
    }
}

impl Accounts {
    /// `api_key.query`'s entries (`item_extend`): never the key itself.
    pub(crate) fn api_key_entries(&self) -> Vec<Value> {
        self.keys
            .keys
            .iter()
            .map(|(id, key)| self.api_key_entry(*id, key))
            .collect()
    }

    fn api_key_entry(&self, id: u64, key: &StoredKey) -> Value {
        let username = self.users.get(key.user_id).map(|u| u["username"].clone());
        let (revoked, reason) = match &username {
            Some(_) => (key.revoked, key.revoked_reason.clone()),
            None => (true, Some("User does not exist".to_string())),
        };
        json!({
            "id": id,
            "name": key.name,
            "username": username.unwrap_or(Value::Null),
            "user_identifier": key.user_id,
            "keyhash": SECRET_VALUE,
            "created_at": {"$date": key.created_ms},
            "expires_at": null,
            "local": true,
            "revoked": revoked,
            "revoked_reason": reason,
        })
    }

    fn api_key_instance(&self, id: u64) -> Result<Value, RpcError> {
        self.keys
            .keys
            .get(&id)
            .map(|k| self.api_key_entry(id, k))
            .ok_or_else(|| RpcError::not_found(format!("ApiKey {id} does not exist")))
    }

    pub(crate) fn api_key_get(&self, id: u64) -> Result<Value, RpcError> {
        self.api_key_instance(id)
    }

    /// `api_key.create`: the entry with the whole key, the one time it is shown.
    pub(crate) fn api_key_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let name = data["name"].as_str().unwrap_or_default().to_string();
        let username = data["username"].as_str().unwrap_or_default();
        if !data.get("expires_at").is_none_or(Value::is_null) {
            return Err(crate::methods::not_emulated(
                "api_key.create with expires_at",
            ));
        }
        let mut errors = Vec::new();
        if self.keys.keys.values().any(|k| k.name == name) {
            errors.push(FieldError::new("api_key_create", "name must be unique"));
        }
        let user = self.user_by_name(username).cloned();
        match &user {
            None => errors.push(FieldError::new("api_key_create", "User does not exist.")),
            Some(u) => {
                if self.privilege_roles(&self.user_gids(u)).is_empty() {
                    errors.push(FieldError::new(
                        "api_key_create",
                        "User lacks privilege role membership.",
                    ));
                }
                let user_id = u["id"].as_u64().unwrap_or_default();
                if self.keys.ids_of(user_id).len() >= MAX_KEYS_PER_USER {
                    errors.push(FieldError::new(
                        "api_key_create.username",
                        format!(
                            "User already meets or exceeds maximum per-user API key limit of {MAX_KEYS_PER_USER}"
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(RpcError::Validation(errors));
        }
        let user_id = user.and_then(|u| u["id"].as_u64()).unwrap_or_default();
        self.keys.last_id += 1;
        let id = self.keys.last_id;
        let secret = new_secret();
        let whole = format!("{id}-{secret}");
        self.keys.keys.insert(
            id,
            StoredKey {
                name,
                user_id,
                secret: Some(secret),
                created_ms: now_ms(),
                revoked: false,
                revoked_reason: None,
            },
        );
        with_key(self.api_key_instance(id)?, whole)
    }

    /// `api_key.update`: name; with `reset: true` a new secret (and no longer revoked),
    /// answered whole; without, the entry alone.
    pub(crate) fn api_key_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        self.api_key_instance(id)?;
        if id == BOOTSTRAP_KEY_ID {
            return Err(crate::methods::not_emulated(
                "api_key.update of the bootstrap key",
            ));
        }
        if !data.get("expires_at").is_none_or(Value::is_null) {
            return Err(crate::methods::not_emulated(
                "api_key.update with expires_at",
            ));
        }
        if let Some(name) = data.get("name").and_then(Value::as_str)
            && self
                .keys
                .keys
                .iter()
                .any(|(k, v)| *k != id && v.name == name)
        {
            return Err(RpcError::Validation(vec![FieldError::new(
                "api_key_update",
                "name must be unique",
            )]));
        }
        let reset = data.get("reset").and_then(Value::as_bool).unwrap_or(false);
        let mut whole = None;
        if let Some(key) = self.keys.keys.get_mut(&id) {
            if let Some(name) = data.get("name").and_then(Value::as_str) {
                key.name = name.to_string();
            }
            if reset {
                let secret = new_secret();
                whole = Some(format!("{id}-{secret}"));
                key.secret = Some(secret);
                key.revoked = false;
                key.revoked_reason = None;
            }
        }
        let entry = self.api_key_instance(id)?;
        match whole {
            Some(whole) => with_key(entry, whole),
            None => Ok(entry),
        }
    }

    /// `api_key.delete`.
    pub(crate) fn api_key_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        self.api_key_instance(id)?;
        if id == BOOTSTRAP_KEY_ID {
            return Err(crate::methods::not_emulated(
                "api_key.delete of the bootstrap key",
            ));
        }
        self.keys.keys.remove(&id);
        Ok(json!(true))
    }

    /// The user a key belongs to (for `api_key_privilege_check`).
    pub(crate) fn api_key_username(&self, id: u64) -> Option<String> {
        let key = self.keys.keys.get(&id)?;
        self.users.get(key.user_id)?["username"]
            .as_str()
            .map(String::from)
    }
}

fn with_key(mut entry: Value, whole: String) -> Result<Value, RpcError> {
    if let Value::Object(map) = &mut entry {
        map.insert("key".into(), Value::String(whole));
    }
    Ok(entry)
}
