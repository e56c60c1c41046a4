//! `user.*`, `group.*`, `privilege.*` and `api_key.*`, and who may call what: a session
//! logged in with a user's API key is that user, and each call it makes must be covered by
//! the roles of the user's privileges (`roles.rs`); the emulator's bootstrap key is the
//! administrator's (FULL_ADMIN). A refused call fails as `check_method_access` fails it:
//! `CallError('Not authorized', EACCES)`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::{arg, id_arg};
use crate::auth::{self, LoginOutcome};
use crate::roles::Roles;
use crate::rpc::{EINVAL, RpcError};
use crate::schema::MethodSpec;
use crate::server::App;
use crate::session::Session;
use crate::state::api_keys::KeyCheck;

pub(crate) const EACCES: i64 = 13;

/// Who a logged-in session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The emulator's own key: `truenas_admin`, FULL_ADMIN.
    Bootstrap,
    /// A user's key: the user's `id`.
    User(u64),
}

/// The methods answered here.
pub(crate) const ACCOUNT_METHODS: &[&str] = &[
    "api_key.create",
    "api_key.delete",
    "api_key.get_instance",
    "api_key.my_keys",
    "api_key.query",
    "api_key.update",
    "group.create",
    "group.delete",
    "group.get_instance",
    "group.query",
    "privilege.create",
    "privilege.delete",
    "privilege.get_instance",
    "privilege.query",
    "privilege.update",
    "user.create",
    "user.delete",
    "user.get_instance",
    "user.query",
];

/// `role.py`'s table, read once from the vendored schema file.
fn roles() -> Result<&'static Roles, RpcError> {
    static ROLES: OnceLock<Result<Roles, String>> = OnceLock::new();
    ROLES
        .get_or_init(|| Roles::load().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| RpcError::call(EINVAL, format!("roles: {e}")))
}

/// Whether some key has this id (a login with an unknown id is made to wait).
pub(crate) fn knows_key_id(app: &App, key: &str) -> bool {
    app.auth.knows_key_id(key) || app.state().accounts.keys.is_user_key(key)
}

/// A plain API-key login (`username` None: `login_with_api_key`), and who it makes the
/// session. A user key follows the bootstrap key's rules (`auth.rs`), and besides a user
/// with no privilege cannot log in (`authenticate.py`).
pub(crate) fn login(
    app: &App,
    username: Option<&str>,
    key: &str,
    secure: bool,
) -> (LoginOutcome, Option<Caller>) {
    let mut state = app.state();
    let accounts = &mut state.accounts;
    let check = accounts
        .keys
        .check(key, |id| accounts.users.get(id).is_some());
    match check {
        KeyCheck::Bootstrap => {
            let outcome = app.auth.login(username, key, secure);
            (
                outcome,
                (outcome == LoginOutcome::Success).then_some(Caller::Bootstrap),
            )
        }
        KeyCheck::UnknownId | KeyCheck::Wrong => (LoginOutcome::AuthErr, None),
        KeyCheck::Revoked => (LoginOutcome::Expired, None),
        KeyCheck::Valid(user_id) => {
            let Some(user) = accounts.users.get(user_id).cloned() else {
                return (LoginOutcome::AuthErr, None);
            };
            if username.is_some_and(|u| Some(u) != user["username"].as_str())
                || accounts
                    .privilege_roles(&accounts.user_gids(&user))
                    .is_empty()
            {
                return (LoginOutcome::AuthErr, None);
            }
            if !secure {
                tracing::warn!("API key revoked: Attempt to use over an insecure transport");
                accounts
                    .keys
                    .revoke(key, "Attempt to use over an insecure transport");
                return (LoginOutcome::Expired, None);
            }
            (LoginOutcome::Success, Some(Caller::User(user_id)))
        }
    }
}

/// The roles a user holds now, expanded (none if the user is gone).
fn user_roles(app: &App, user_id: u64) -> Result<BTreeSet<String>, RpcError> {
    let state = app.state();
    let accounts = &state.accounts;
    let granted = accounts
        .users
        .get(user_id)
        .map(|u| accounts.privilege_roles(&accounts.user_gids(u)))
        .unwrap_or_default();
    Ok(roles()?.expand(granted.iter().map(String::as_str)))
}

/// `check_method_access` for a logged-in session: Ok, or "Not authorized".
pub(crate) fn authorize(app: &App, session: &Session, spec: &MethodSpec) -> Result<(), RpcError> {
    match session.caller() {
        None | Some(Caller::Bootstrap) => Ok(()),
        Some(Caller::User(user_id)) => {
            if roles()?.authorizes(&user_roles(app, user_id)?, spec) {
                Ok(())
            } else {
                Err(RpcError::call(EACCES, "Not authorized"))
            }
        }
    }
}

/// `auth.me`: the bootstrap administrator, or the key's user with its privilege.
pub(crate) fn me(app: &App, session: &Session) -> Result<Value, RpcError> {
    let Some(Caller::User(user_id)) = session.caller() else {
        return Ok(auth::user_info());
    };
    let expanded = user_roles(app, user_id)?;
    let allowlist: Vec<Value> = app
        .schema
        .names()
        .filter(|name| {
            app.schema
                .method(name)
                .is_some_and(|spec| roles().is_ok_and(|r| r.authorizes(&expanded, spec)))
        })
        .map(|name| json!({"method": "CALL", "resource": name}))
        .collect();
    let state = app.state();
    let accounts = &state.accounts;
    let user = accounts
        .users
        .get(user_id)
        .ok_or_else(|| RpcError::call(EACCES, "Not authorized"))?;
    let gids = accounts.user_gids(user);
    Ok(json!({
        "pw_name": user["username"],
        "pw_gecos": user["full_name"],
        "pw_dir": user["home"],
        "pw_shell": user["shell"],
        "pw_uid": user["uid"],
        "pw_gid": gids.first(),
        "grouplist": gids,
        "sid": null,
        "source": "LOCAL",
        "local": true,
        "attributes": {},
        "two_factor_config": {"secret_configured": false, "interval": 30, "otp_digits": 6},
        "privilege": {"roles": expanded, "allowlist": allowlist, "web_shell": false},
        "account_attributes": ["LOCAL", "API_KEY"],
    }))
}

/// `api_key_privilege_check`: without API_KEY_WRITE (or FULL_ADMIN) a user may make and
/// change only their own keys.
fn key_privilege_check(app: &App, session: &Session, target: &str) -> Result<(), RpcError> {
    let Some(Caller::User(user_id)) = session.caller() else {
        return Ok(());
    };
    let expanded = user_roles(app, user_id)?;
    if expanded.contains("FULL_ADMIN") || expanded.contains("API_KEY_WRITE") {
        return Ok(());
    }
    let me = app
        .state()
        .accounts
        .users
        .get(user_id)
        .and_then(|u| u["username"].as_str().map(String::from))
        .unwrap_or_default();
    if me == target {
        Ok(())
    } else {
        Err(RpcError::call(
            EACCES,
            format!(
                "{me}: authenticated user lacks privileges to create or modify API keys of other users."
            ),
        ))
    }
}

/// The answer of an account method; None if `method` is not one of them.
pub(super) fn call(
    app: &Arc<App>,
    session: &Session,
    method: &str,
    params: &[Value],
) -> Option<Result<Value, RpcError>> {
    if !ACCOUNT_METHODS.contains(&method) {
        return None;
    }
    Some(answer(app, session, method, params))
}

fn answer(app: &App, session: &Session, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    let (filters, options) = (arg(params, 0), arg(params, 1));
    let data = |i: usize| arg(params, i).cloned().unwrap_or_else(|| json!({}));
    // Checks that need the caller's roles run before the state is locked for the change.
    match method {
        "api_key.create" => {
            key_privilege_check(
                app,
                session,
                data(0)["username"].as_str().unwrap_or_default(),
            )?;
        }
        "api_key.update" | "api_key.delete" => {
            let owner = app.state().accounts.api_key_username(id_arg(params, 0));
            if let Some(owner) = owner {
                key_privilege_check(app, session, &owner)?;
            }
        }
        _ => {}
    }
    let caller_user = match session.caller() {
        Some(Caller::User(id)) => Some(id),
        // The bootstrap key is truenas_admin's (user 2).
        _ => Some(2),
    };
    let roles = roles()?;
    let mut state = app.state();
    let a = &mut state.accounts;
    match method {
        "user.query" => crate::query::apply(a.user_entries(), filters, options),
        "user.get_instance" => a
            .users
            .instance(id_arg(params, 0), "User")
            .map(|row| a.user_entry(&row)),
        "user.create" => a.user_create(&data(0)),
        "user.delete" => a.user_delete(id_arg(params, 0), arg(params, 1), caller_user),
        "group.query" => crate::query::apply(a.group_entries(), filters, options),
        "group.get_instance" => a
            .groups
            .instance(id_arg(params, 0), "Group")
            .map(|row| a.group_entry(&row)),
        "group.create" => a.group_create(&data(0)),
        "group.delete" => a.group_delete(id_arg(params, 0), arg(params, 1)),
        "privilege.query" => crate::query::apply(a.privilege_entries(), filters, options),
        "privilege.get_instance" => a
            .privileges
            .instance(id_arg(params, 0), "Privilege")
            .map(|row| a.privilege_entry(&row)),
        "privilege.create" => a.privilege_create(&data(0), roles),
        "privilege.update" => a.privilege_update(id_arg(params, 0), &data(1), roles),
        "privilege.delete" => a.privilege_delete(id_arg(params, 0)),
        "api_key.query" => crate::query::apply(a.api_key_entries(), filters, options),
        "api_key.get_instance" => a.api_key_get(id_arg(params, 0)),
        "api_key.my_keys" => {
            let mine: Vec<Value> = a
                .api_key_entries()
                .into_iter()
                .filter(|k| k["user_identifier"].as_u64() == caller_user)
                .collect();
            Ok(Value::Array(mine))
        }
        "api_key.create" => a.api_key_create(&data(0)),
        "api_key.update" => a.api_key_update(id_arg(params, 0), &data(1)),
        "api_key.delete" => a.api_key_delete(id_arg(params, 0)),
        _ => Err(super::not_emulated(method)),
    }
}
