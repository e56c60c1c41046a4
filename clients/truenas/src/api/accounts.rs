//! `user.*`, `privilege.*` and `api_key.*`: what a least-privilege service
//! account is made of. Shapes from `methods-accounts.json` (the same
//! 25.10.5 API, extracted like `methods.json`; see the emulator's
//! `schema/README.md`).
//!
//! A privilege grants roles to **local groups, by gid**; a user holds the
//! roles of the privileges its groups hold; an API key is a user's and can
//! do what the user may. TrueNAS shows a key whole only in the answer of
//! `api_key.create` and of `api_key.update` with `reset: true`: those two
//! calls answer it here as a [`SecretString`], and the rest of the answer
//! is decoded without it, so no decoding error can quote it.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Filter, query_params};
use crate::client::{Effect, TruenasClient};
use crate::error::{Error, Result};

/// A user's primary group as `user.query` shows it (its database row).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserGroup {
    pub id: i64,
    #[serde(rename = "bsdgrp_gid")]
    pub gid: i64,
    #[serde(rename = "bsdgrp_group", default)]
    pub name: String,
}

/// `user.query` (the fields kiln reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    pub uid: i64,
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    pub group: UserGroup,
    #[serde(default)]
    pub groups: Vec<i64>,
    #[serde(default)]
    pub builtin: bool,
    #[serde(default)]
    pub password_disabled: bool,
    /// The roles the user's groups' privileges grant (not expanded).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub api_keys: Vec<i64>,
}

/// `user.create` for a service account: its own group (`group_create`), no
/// password, no SMB (TrueNAS refuses a disabled password for SMB users),
/// no home (`/var/empty`, the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewServiceUser {
    pub username: String,
    pub full_name: String,
}

/// A local group a privilege is granted to (`privilege.query`'s
/// `local_groups`: the group's entry, or only its gid if it is gone).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PrivilegeGroup {
    pub gid: i64,
    #[serde(default)]
    pub group: Option<String>,
}

/// `privilege.query`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Privilege {
    pub id: i64,
    #[serde(default)]
    pub builtin_name: Option<String>,
    pub name: String,
    #[serde(default)]
    pub local_groups: Vec<PrivilegeGroup>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub web_shell: bool,
}

impl Privilege {
    pub fn gids(&self) -> Vec<i64> {
        self.local_groups.iter().map(|g| g.gid).collect()
    }
}

/// `privilege.create`: roles for local groups (by gid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPrivilege {
    pub name: String,
    pub local_groups: Vec<i64>,
    pub roles: Vec<String>,
    pub web_shell: bool,
}

/// `privilege.update`, only the fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrivilegeUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_groups: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// `api_key.query`: a key's entry, never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// None when the key's user is gone.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub revoked: bool,
    #[serde(default)]
    pub revoked_reason: Option<String>,
}

/// `api_key.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewApiKey {
    pub name: String,
    pub username: String,
}

impl TruenasClient {
    pub async fn users(&self, filters: &[Filter]) -> Result<Vec<User>> {
        self.call("user.query", query_params(filters), Effect::Reads)
            .await
    }

    /// Makes a service account (see [`NewServiceUser`]).
    pub async fn create_service_user(&self, user: &NewServiceUser) -> Result<User> {
        let data = json!({
            "username": user.username,
            "full_name": user.full_name,
            "group_create": true,
            "password_disabled": true,
            "smb": false,
        });
        // The answer carries `password` (null here); the fields read ignore it.
        self.call("user.create", json!([data]), Effect::Changes)
            .await
    }

    /// `user.delete`, with the user's own group when nothing else uses it.
    pub async fn delete_user(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call(
                "user.delete",
                json!([id, {"delete_group": true}]),
                Effect::Changes,
            )
            .await?;
        Ok(())
    }

    pub async fn privileges(&self, filters: &[Filter]) -> Result<Vec<Privilege>> {
        self.call("privilege.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_privilege(&self, privilege: &NewPrivilege) -> Result<Privilege> {
        self.call("privilege.create", json!([privilege]), Effect::Changes)
            .await
    }

    pub async fn update_privilege(&self, id: i64, update: &PrivilegeUpdate) -> Result<Privilege> {
        self.call("privilege.update", json!([id, update]), Effect::Changes)
            .await
    }

    pub async fn delete_privilege(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("privilege.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }

    pub async fn api_keys(&self, filters: &[Filter]) -> Result<Vec<ApiKey>> {
        self.call("api_key.query", query_params(filters), Effect::Reads)
            .await
    }

    /// Makes a key; answers its entry and the key, `<id>-<secret>`, which
    /// TrueNAS will not show again.
    pub async fn create_api_key(&self, key: &NewApiKey) -> Result<(ApiKey, SecretString)> {
        let answer = self
            .call_value("api_key.create", json!([key]), Effect::Changes)
            .await?;
        self.split_key("api_key.create", answer)
    }

    /// `api_key.update` with `reset: true`: a new secret for the key (the
    /// old one stops working, a revoked key works again); answers the entry
    /// and the new key.
    pub async fn reset_api_key(&self, id: i64) -> Result<(ApiKey, SecretString)> {
        let answer = self
            .call_value(
                "api_key.update",
                json!([id, {"reset": true}]),
                Effect::Changes,
            )
            .await?;
        self.split_key("api_key.update", answer)
    }

    pub async fn delete_api_key(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("api_key.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }

    /// Takes the key out of an answer before the rest is decoded.
    fn split_key(&self, method: &str, mut answer: Value) -> Result<(ApiKey, SecretString)> {
        let decode = |reason: String| Error::Decode {
            endpoint: self.endpoint().to_owned(),
            method: method.to_owned(),
            reason,
        };
        let key = match answer.as_object_mut().and_then(|a| a.remove("key")) {
            Some(Value::String(key)) => SecretString::from(key),
            // The value is not quoted: it may be the key.
            Some(_) => return Err(decode("`key` is not a string".to_owned())),
            None => return Err(decode("the answer has no `key`".to_owned())),
        };
        let entry = serde_json::from_value(answer).map_err(|e| decode(e.to_string()))?;
        Ok((entry, key))
    }
}
