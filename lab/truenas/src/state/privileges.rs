//! Privileges (`plugins/account_/privilege.py` of TS-25.10.6): a name, the local groups (by
//! **gid**) that hold it, and the roles it grants. A user's roles are those of every
//! privilege one of its groups holds (`privileges_for_groups`); a user with none cannot log
//! in (`authenticate.py` answers no user), and cannot be given an API key
//! ("User lacks privilege role membership.").

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::accounts::Accounts;
use crate::roles::Roles;
use crate::rpc::{FieldError, RpcError};

const EPERM: i64 = 1;

impl Accounts {
    /// The three built-in privileges; only the local administrators' has a group.
    pub(super) fn seed_builtin_privileges(&mut self) {
        for (builtin, name, groups, roles, web_shell) in [
            (
                "LOCAL_ADMINISTRATOR",
                "Local Administrator",
                vec![544],
                "FULL_ADMIN",
                true,
            ),
            (
                "READONLY_ADMINISTRATOR",
                "Read-Only Administrator",
                vec![],
                "READONLY_ADMIN",
                false,
            ),
            (
                "SHARING_ADMINISTRATOR",
                "Sharing Administrator",
                vec![],
                "SHARING_ADMIN",
                false,
            ),
        ] {
            let row = json!({
                "builtin_name": builtin,
                "name": name,
                "local_groups": groups,
                "ds_groups": [],
                "roles": [roles],
                "web_shell": web_shell,
            });
            self.privileges
                .insert(row.as_object().cloned().unwrap_or_default());
        }
    }

    /// The roles (as granted, not expanded) of the privileges held by any of `gids`.
    pub(crate) fn privilege_roles(&self, gids: &[u64]) -> BTreeSet<String> {
        self.privileges
            .rows()
            .filter(|p| {
                p["local_groups"].as_array().is_some_and(|g| {
                    g.iter()
                        .any(|x| x.as_u64().is_some_and(|x| gids.contains(&x)))
                })
            })
            .flat_map(|p| p["roles"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(String::from))
            .collect()
    }

    /// `privilege.query`'s entries: each local group as its `group.query` entry.
    pub(crate) fn privilege_entries(&self) -> Vec<Value> {
        self.privileges
            .rows()
            .map(|p| self.privilege_entry(p))
            .collect()
    }

    pub(crate) fn privilege_entry(&self, row: &Value) -> Value {
        let mut entry = row.clone();
        let groups: Vec<Value> = row["local_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .map(|gid| match self.group_by_gid(gid) {
                Some(group) => self.group_entry(group),
                // `_local_groups(include_nonexistent=True)`.
                None => json!({"gid": gid, "sid": null, "group": null}),
            })
            .collect();
        if let Value::Object(map) = &mut entry {
            map.insert("local_groups".into(), Value::Array(groups));
        }
        entry
    }

    /// `privilege.create`.
    pub(crate) fn privilege_create(
        &mut self,
        data: &Value,
        roles: &Roles,
    ) -> Result<Value, RpcError> {
        let mut row: Map<String, Value> = data.as_object().cloned().unwrap_or_default();
        for (field, default) in [
            ("local_groups", json!([])),
            ("ds_groups", json!([])),
            ("roles", json!([])),
        ] {
            row.entry(field).or_insert(default);
        }
        row.insert("builtin_name".into(), Value::Null);
        self.validate_privilege("privilege_create", &Value::Object(row.clone()), None, roles)?;
        let row = self.privileges.insert(row);
        Ok(self.privilege_entry(&row))
    }

    /// `privilege.update`: the given fields over the old ones (local groups as gids);
    /// a built-in privilege's name and roles are read-only.
    pub(crate) fn privilege_update(
        &mut self,
        id: u64,
        data: &Value,
        roles: &Roles,
    ) -> Result<Value, RpcError> {
        let old = self.privileges.instance(id, "Privilege")?;
        let mut new = old.clone();
        super::merge(&mut new, data);
        if !old["builtin_name"].is_null() {
            let errors: Vec<FieldError> = ["name", "roles"]
                .into_iter()
                .filter(|k| new[*k] != old[*k])
                .map(|k| {
                    FieldError::new(
                        format!("privilege_update.{k}"),
                        "This field is read-only for built-in privileges",
                    )
                })
                .collect();
            if !errors.is_empty() {
                return Err(RpcError::Validation(errors));
            }
        }
        self.validate_privilege("privilege_update", &new, Some(id), roles)?;
        if let Some(row) = self.privileges.get_mut(id) {
            *row = new;
        }
        self.privileges
            .get(id)
            .map(|row| self.privilege_entry(row))
            .ok_or_else(|| RpcError::not_found(format!("Privilege {id} does not exist")))
    }

    /// `privilege.delete`: built-in privileges stay.
    pub(crate) fn privilege_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        let old = self.privileges.instance(id, "Privilege")?;
        if !old["builtin_name"].is_null() {
            return Err(RpcError::call(EPERM, "Unable to delete built-in privilege"));
        }
        self.privileges.remove(id);
        Ok(json!(true))
    }

    /// `PrivilegeService._validate`: a unique name, existing local groups, known roles.
    fn validate_privilege(
        &self,
        schema: &str,
        data: &Value,
        id: Option<u64>,
        roles: &Roles,
    ) -> Result<(), RpcError> {
        let mut errors = Vec::new();
        let name = &data["name"];
        if self
            .privileges
            .rows()
            .any(|p| &p["name"] == name && p["id"].as_u64() != id)
        {
            errors.push(FieldError::new(
                format!("{schema}.name"),
                "Object with this name already exists",
            ));
        }
        for (i, gid) in data["local_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if gid.as_u64().and_then(|g| self.group_by_gid(g)).is_none() {
                errors.push(FieldError::new(
                    format!("{schema}.local_groups.{i}"),
                    format!(
                        "{gid}: local group does not exist. This error may be addressed by either \
                         re-creating the missing group with the specified group id or removing \
                         this entry from the privilege."
                    ),
                ));
            }
        }
        for (i, gid) in data["ds_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            // No directory service here: every ds group is one that does not exist.
            errors.push(FieldError::new(
                format!("{schema}.ds_groups.{i}"),
                format!(
                    "{}: directory service group does not exist. If the directory service \
                     state is healthy, then this error may be addressed by removing this entry \
                     from the privilege.",
                    gid.as_str().map_or_else(|| gid.to_string(), String::from)
                ),
            ));
        }
        for (i, role) in data["roles"].as_array().into_iter().flatten().enumerate() {
            if !role.as_str().is_some_and(|r| roles.exists(r)) {
                errors.push(FieldError::new(
                    format!("{schema}.roles.{i}"),
                    "Invalid role",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RpcError::Validation(errors))
        }
    }
}
