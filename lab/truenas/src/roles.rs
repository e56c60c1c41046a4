//! TrueNAS's roles (`role.py` `ROLES`, vendored in `schema/methods-accounts.json`) and how a
//! caller's roles decide a call (`main.py` `check_method_access`, `utils/allowlist.py`):
//! a privilege's roles are expanded through `includes` (`RoleManager.roles_for_role`; a
//! `full_admin` role stands for every role), and a call is allowed when the method needs no
//! authentication or no authorization, or when the caller holds **any one** of the
//! method's declared roles. A method that requires authorization and declares no roles is FULL_ADMIN's alone.

use std::collections::{BTreeSet, HashMap};

use kiln_lab_core::LabError;
use serde_json::Value;

use crate::schema::{METHODS_ACCOUNTS_JSON, MethodSpec};

/// One role of `role.py`.
#[derive(Debug, Clone)]
struct RoleDef {
    includes: Vec<String>,
    full_admin: bool,
}

/// Every role TrueNAS 25.10 knows.
#[derive(Debug, Clone)]
pub(crate) struct Roles {
    roles: HashMap<String, RoleDef>,
}

impl Roles {
    pub(crate) fn load() -> Result<Self, LabError> {
        let doc: Value = serde_json::from_str(METHODS_ACCOUNTS_JSON)
            .map_err(|e| LabError::Schema(e.to_string()))?;
        let table = doc
            .get("roles")
            .and_then(Value::as_object)
            .ok_or_else(|| LabError::Schema("methods-accounts.json: no `roles` object".into()))?;
        let roles = table
            .iter()
            .map(|(name, def)| {
                let includes = def
                    .get("includes")
                    .and_then(Value::as_array)
                    .map(|i| {
                        i.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let full_admin = def
                    .get("full_admin")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (
                    name.clone(),
                    RoleDef {
                        includes,
                        full_admin,
                    },
                )
            })
            .collect();
        Ok(Self { roles })
    }

    /// Whether `name` is a role (`privilege._validate`: "Invalid role" otherwise).
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.roles.contains_key(name)
    }

    /// The roles `granted` amount to, includes followed (a full-admin role: every role).
    pub(crate) fn expand<'a>(
        &self,
        granted: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut pending: Vec<String> = granted.into_iter().map(String::from).collect();
        // Bounded: each role is expanded once, and there are finitely many.
        while let Some(role) = pending.pop() {
            let Some(def) = self.roles.get(&role) else {
                continue;
            };
            if !out.insert(role) {
                continue;
            }
            if def.full_admin {
                return self.roles.keys().cloned().collect();
            }
            pending.extend(def.includes.iter().cloned());
        }
        out
    }

    /// Whether expanded roles include a full-admin one (FULL_ADMIN's allowlist is `*`).
    fn full_admin(&self, expanded: &BTreeSet<String>) -> bool {
        expanded
            .iter()
            .any(|r| self.roles.get(r).is_some_and(|d| d.full_admin))
    }

    /// Whether a user session holding `expanded` roles may call the method: methods
    /// without authentication (`authorize_method_call` returns early for them) or without
    /// authorization, or one of the method's roles.
    pub(crate) fn authorizes(&self, expanded: &BTreeSet<String>, spec: &MethodSpec) -> bool {
        !spec.authentication_required
            || !spec.authorization_required
            || self.full_admin(expanded)
            || spec.roles.iter().any(|r| expanded.contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_includes_read_and_full_admin_is_everything() {
        let roles = Roles::load().unwrap();
        let write = roles.expand(["ACCOUNT_WRITE"]);
        assert!(write.contains("ACCOUNT_READ"));
        assert!(!write.contains("API_KEY_READ"));
        // role.py's PRIVILEGE_WRITE includes itself, not PRIVILEGE_READ: kept as it is.
        assert!(!roles.expand(["PRIVILEGE_WRITE"]).contains("PRIVILEGE_READ"));
        let iscsi = roles.expand(["SHARING_ISCSI_WRITE"]);
        assert!(iscsi.contains("SHARING_ISCSI_PORTAL_READ"));
        assert!(roles.expand(["FULL_ADMIN"]).len() > 100);
        assert!(roles.expand(["NO_SUCH_ROLE"]).is_empty());
    }
}
