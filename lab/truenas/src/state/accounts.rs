//! Local users and groups (`plugins/account.py` `UserService`, `GroupService` of TS-25.10.6),
//! as far as a service account needs them: `user.create` (with `group_create`), `user.delete`
//! (with `delete_group`), their queries, and `group.create/update/delete`. Home directories,
//! SMB, passwords and SSH keys are not emulated: a user with a home other than `/var/empty`,
//! or with SMB on, is refused as not emulated rather than half-made.
//!
//! The rows keep what the database keeps; the query entries add what `user_extend` /
//! `group_extend` compute (the primary group as its database row, roles, API key ids, …).

use serde_json::{Map, Value, json};

use super::Table;
use crate::rpc::{EINVAL, FieldError, RpcError};

const EEXIST: i64 = 17;
const EACCES: i64 = 13;
/// `user.get_next_uid` / `group.get_next_gid` start here (NAS-117892).
const FIRST_FREE_ID: u64 = 3000;
/// `ADMIN_UID`: the default administrator, immutable.
const ADMIN_UID: u64 = 950;
const DEFAULT_HOME: &str = "/var/empty";

/// The accounts of the NAS: users, groups, privileges and API keys.
#[derive(Debug)]
pub(crate) struct Accounts {
    pub users: Table,
    pub groups: Table,
    pub privileges: Table,
    pub keys: super::api_keys::ApiKeys,
}

impl Accounts {
    /// A fresh 25.10 install, trimmed: root, the administrator `truenas_admin` (in
    /// `builtin_administrators`), and the three built-in privileges.
    pub(crate) fn initial() -> Self {
        let mut accounts = Self {
            users: Table::default(),
            groups: Table::default(),
            privileges: Table::default(),
            keys: super::api_keys::ApiKeys::default(),
        };
        for (gid, name, builtin) in [
            (0, "root", true),
            (544, "builtin_administrators", true),
            (545, "builtin_users", true),
            (ADMIN_UID, "truenas_admin", false),
        ] {
            accounts.groups.insert(group_row(gid, name, builtin, false));
        }
        accounts
            .users
            .insert(user_row(0, "root", "root", 1, &[], true));
        accounts.users.insert(user_row(
            ADMIN_UID,
            "truenas_admin",
            "TrueNAS Admin",
            4,
            &[2],
            false,
        ));
        accounts.seed_builtin_privileges();
        // truenas_admin (user 2) holds key 1, the emulator's own.
        accounts.keys.seed_bootstrap(2);
        accounts
    }

    pub(crate) fn user_by_name(&self, username: &str) -> Option<&Value> {
        self.users
            .rows()
            .find(|u| u["username"].as_str() == Some(username))
    }

    pub(crate) fn group_by_gid(&self, gid: u64) -> Option<&Value> {
        self.groups.rows().find(|g| g["gid"].as_u64() == Some(gid))
    }

    /// The gids a user belongs to: primary group and auxiliary groups (`grouplist`).
    pub(crate) fn user_gids(&self, user: &Value) -> Vec<u64> {
        let ids =
            std::iter::once(&user["group"]).chain(user["groups"].as_array().into_iter().flatten());
        ids.filter_map(Value::as_u64)
            .filter_map(|id| self.groups.get(id))
            .filter_map(|g| g["gid"].as_u64())
            .collect()
    }

    /// `user.query`'s entries.
    pub(crate) fn user_entries(&self) -> Vec<Value> {
        self.users.rows().map(|u| self.user_entry(u)).collect()
    }

    pub(crate) fn user_entry(&self, row: &Value) -> Value {
        let mut entry = row.clone();
        let primary = row["group"]
            .as_u64()
            .and_then(|id| self.groups.get(id))
            .map(group_as_foreign_key)
            .unwrap_or(Value::Null);
        let uid = row["uid"].as_u64().unwrap_or_default();
        let builtin = row["builtin"].as_bool().unwrap_or(false);
        let user_id = row["id"].as_u64().unwrap_or_default();
        let roles: Vec<String> = self
            .privilege_roles(&self.user_gids(row))
            .into_iter()
            .collect();
        if let Value::Object(map) = &mut entry {
            map.insert("group".into(), primary);
            map.insert("local".into(), json!(true));
            map.insert("immutable".into(), json!(builtin || uid == ADMIN_UID));
            map.insert("twofactor_auth_configured".into(), json!(false));
            map.insert("sid".into(), Value::Null);
            map.insert("password_age".into(), Value::Null);
            map.insert("password_change_required".into(), json!(false));
            map.insert("roles".into(), json!(roles));
            map.insert("api_keys".into(), json!(self.keys.ids_of(user_id)));
        }
        entry
    }

    /// `group.query`'s entries.
    pub(crate) fn group_entries(&self) -> Vec<Value> {
        self.groups.rows().map(|g| self.group_entry(g)).collect()
    }

    pub(crate) fn group_entry(&self, row: &Value) -> Value {
        let mut entry = row.clone();
        let id = row["id"].as_u64();
        let gid = row["gid"].as_u64().unwrap_or_default();
        // Members: auxiliary and primary (`group_extend`'s primary_memberships).
        let users: Vec<u64> = self
            .users
            .rows()
            .filter(|u| {
                u["group"].as_u64() == id
                    || u["groups"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|x| x.as_u64() == id))
            })
            .filter_map(|u| u["id"].as_u64())
            .collect();
        let roles: Vec<String> = self.privilege_roles(&[gid]).into_iter().collect();
        if let Value::Object(map) = &mut entry {
            map.insert("users".into(), json!(users));
            map.insert("roles".into(), json!(roles));
        }
        entry
    }

    /// `user.create`: the checks of `do_create` and `common_validation` that apply to a
    /// service account, then the user (and its group with `group_create`).
    pub(crate) fn user_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        const S: &str = "user_create";
        let username = data["username"].as_str().unwrap_or_default().to_string();
        let group = data.get("group").and_then(Value::as_u64);
        let group_create = data["group_create"].as_bool().unwrap_or(false);
        let password_disabled = data["password_disabled"].as_bool().unwrap_or(false);
        let smb = data["smb"].as_bool().unwrap_or(true);
        let password = data.get("password").and_then(Value::as_str);
        let mut errors = Vec::new();
        if (group.is_none() && !group_create) || (group.is_some() && group_create) {
            errors.push(FieldError::new(
                format!("{S}.group"),
                "Enter either a group name or create a new group to continue.",
            ));
        }
        if self.user_by_name(&username).is_some() {
            errors.push(
                FieldError::new(
                    format!("{S}.username"),
                    format!("The username \"{username}\" already exists."),
                )
                .with_errno(EEXIST),
            );
        }
        if smb && password_disabled {
            errors.push(FieldError::new(
                format!("{S}.password_disabled"),
                "Password authentication may not be disabled for SMB users.",
            ));
        }
        if password.is_none() && !password_disabled {
            errors.push(FieldError::new(
                format!("{S}.password"),
                "Password is required",
            ));
        } else if password_disabled && password.is_some() {
            errors.push(FieldError::new(
                format!("{S}.password_disabled"),
                "Leave \"Password\" blank when \"Disable password login\" is checked.",
            ));
        }
        if !errors.is_empty() {
            return Err(RpcError::Validation(errors));
        }
        if smb
            || data
                .get("home")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_HOME)
                != DEFAULT_HOME
        {
            return Err(crate::methods::not_emulated(
                "user.create with SMB or a home directory",
            ));
        }
        let same_name = self
            .groups
            .rows()
            .find(|g| g["group"].as_str() == Some(&username))
            .and_then(|g| g["id"].as_u64());
        let group_id = match group {
            Some(id) => {
                if self.groups.get(id).is_none() {
                    return Err(RpcError::Validation(vec![
                        FieldError::new(format!("{S}.group"), format!("Group {id} not found"))
                            .with_errno(2),
                    ]));
                }
                id
            }
            // `group_create` reuses a local group of the user's name if there is one.
            None => match same_name {
                Some(existing) => existing,
                None => {
                    let gid = self.next_gid();
                    let row = self.groups.insert(group_row(gid, &username, false, false));
                    row["id"].as_u64().unwrap_or_default()
                }
            },
        };
        let uid = data
            .get("uid")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| self.next_uid());
        let groups: Vec<u64> = data["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let mut row = user_row(
            uid,
            &username,
            data["full_name"].as_str().unwrap_or_default(),
            group_id,
            &groups,
            false,
        );
        for field in [
            "shell",
            "password_disabled",
            "ssh_password_enabled",
            "locked",
            "sudo_commands",
            "sudo_commands_nopasswd",
            "email",
        ] {
            if let Some(v) = data.get(field) {
                row.insert(field.into(), v.clone());
            }
        }
        row.insert("smb".into(), json!(false));
        let row = self.users.insert(row);
        // `do_create` answers the user with the password it was given (none here).
        let mut entry = self.user_entry(&row);
        if let Value::Object(map) = &mut entry {
            map.insert("password".into(), Value::Null);
        }
        Ok(entry)
    }

    /// `user.delete`: the user, and with `delete_group` (the default) its primary group
    /// when no one else uses it and no privilege holds it (`group.delete` refuses those;
    /// `do_delete` logs that and keeps the group). Its API keys stay, revoked
    /// ("User does not exist") as `api_key.item_extend` reports them.
    pub(crate) fn user_delete(
        &mut self,
        id: u64,
        options: Option<&Value>,
        caller_user: Option<u64>,
    ) -> Result<Value, RpcError> {
        let user = self.users.instance(id, "User")?;
        if caller_user == Some(id) {
            return Err(RpcError::call(
                EINVAL,
                "Cannot delete the currently active user",
            ));
        }
        if user["builtin"].as_bool().unwrap_or(false) {
            return Err(RpcError::call(EINVAL, "Cannot delete a built-in user"));
        }
        if user["uid"].as_u64() == Some(ADMIN_UID) {
            return Err(RpcError::call(EINVAL, "Cannot delete an immutable user"));
        }
        self.users.remove(id);
        let delete_group = options
            .and_then(|o| o.get("delete_group"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if let Some(group_id) = user["group"].as_u64()
            && delete_group
            && self
                .groups
                .get(group_id)
                .is_some_and(|g| g["builtin"] == json!(false))
        {
            let still_used = self.users.rows().any(|u| {
                u["group"].as_u64() == Some(group_id)
                    || u["groups"]
                        .as_array()
                        .is_some_and(|g| g.iter().any(|x| x.as_u64() == Some(group_id)))
            });
            if !still_used && let Err(e) = self.group_delete(group_id, None) {
                tracing::warn!(
                    "Failed to delete primary group of {}: {}",
                    user["username"],
                    e.reason()
                );
            }
        }
        Ok(json!(id))
    }

    /// `group.create`: a local group (name unique, gid from 3000).
    pub(crate) fn group_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let name = data["name"].as_str().unwrap_or_default();
        if self
            .groups
            .rows()
            .any(|g| g["group"].as_str() == Some(name))
        {
            return Err(RpcError::Validation(vec![
                FieldError::new(
                    "group_create.name",
                    format!("A Group with the name \"{name}\" already exists."),
                )
                .with_errno(EEXIST),
            ]));
        }
        if data["smb"].as_bool().unwrap_or(true) {
            return Err(crate::methods::not_emulated("group.create with SMB"));
        }
        let gid = data
            .get("gid")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| self.next_gid());
        let mut row = group_row(gid, name, false, false);
        for field in ["sudo_commands", "sudo_commands_nopasswd"] {
            if let Some(v) = data.get(field) {
                row.insert(field.into(), v.clone());
            }
        }
        Ok(self.groups.insert(row)["id"].clone())
    }

    /// `group.delete`: refused for built-in groups and for groups a privilege holds.
    pub(crate) fn group_delete(
        &mut self,
        id: u64,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        let group = self.groups.instance(id, "Group")?;
        if group["builtin"].as_bool().unwrap_or(false) {
            return Err(RpcError::call(
                EACCES,
                "A built-in group cannot be deleted.",
            ));
        }
        let gid = group["gid"].as_u64().unwrap_or_default();
        if let Some(privilege) = self.privileges.rows().find(|p| {
            p["local_groups"]
                .as_array()
                .is_some_and(|g| g.contains(&json!(gid)))
        }) {
            return Err(RpcError::call(
                EACCES,
                format!(
                    "This group is used by privilege {}. Please remove it from that privilege \
                     first, then delete the group.",
                    python_repr(privilege["name"].as_str().unwrap_or_default())
                ),
            ));
        }
        let delete_users = options
            .and_then(|o| o.get("delete_users"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if delete_users {
            return Err(crate::methods::not_emulated(
                "group.delete with delete_users",
            ));
        }
        self.groups.remove(id);
        for user in self.users.rows_mut() {
            if let Some(Value::Array(groups)) = user.get_mut("groups") {
                groups.retain(|g| g.as_u64() != Some(id));
            }
        }
        Ok(json!(id))
    }

    fn next_uid(&self) -> u64 {
        let taken = self.users.rows().filter_map(|u| u["uid"].as_u64());
        taken
            .filter(|&u| u >= FIRST_FREE_ID)
            .max()
            .map_or(FIRST_FREE_ID, |m| m + 1)
    }

    fn next_gid(&self) -> u64 {
        let taken = self.groups.rows().filter_map(|g| g["gid"].as_u64());
        taken
            .filter(|&g| g >= FIRST_FREE_ID)
            .max()
            .map_or(FIRST_FREE_ID, |m| m + 1)
    }
}

/// Python's `repr` of a plain string, as `f'{name!r}'` puts it in messages.
pub(crate) fn python_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', "\\'"))
    }
}

fn group_row(gid: u64, name: &str, builtin: bool, smb: bool) -> Map<String, Value> {
    let row = json!({
        "gid": gid,
        "name": name,
        "group": name,
        "builtin": builtin,
        "sudo_commands": [],
        "sudo_commands_nopasswd": [],
        "smb": smb,
        "userns_idmap": null,
        "local": true,
        "sid": null,
        "immutable": builtin,
    });
    row.as_object().cloned().unwrap_or_default()
}

fn user_row(
    uid: u64,
    username: &str,
    full_name: &str,
    group_id: u64,
    groups: &[u64],
    builtin: bool,
) -> Map<String, Value> {
    let row = json!({
        "uid": uid,
        "username": username,
        "unixhash": "*",
        "smbhash": "*",
        "home": DEFAULT_HOME,
        "shell": "/usr/sbin/nologin",
        "full_name": full_name,
        "builtin": builtin,
        "smb": false,
        "userns_idmap": null,
        "group": group_id,
        "groups": groups,
        "password_disabled": true,
        "ssh_password_enabled": false,
        "sshpubkey": null,
        "locked": false,
        "sudo_commands": [],
        "sudo_commands_nopasswd": [],
        "email": null,
        "last_password_change": null,
        "password_history": [],
    });
    row.as_object().cloned().unwrap_or_default()
}

/// A group as `user.query` shows a user's primary group: the database row, prefixed.
fn group_as_foreign_key(group: &Value) -> Value {
    json!({
        "id": group["id"],
        "bsdgrp_gid": group["gid"],
        "bsdgrp_group": group["group"],
        "bsdgrp_builtin": group["builtin"],
        "bsdgrp_sudo_commands": group["sudo_commands"],
        "bsdgrp_sudo_commands_nopasswd": group["sudo_commands_nopasswd"],
        "bsdgrp_smb": group["smb"],
        "bsdgrp_userns_idmap": group["userns_idmap"],
    })
}
