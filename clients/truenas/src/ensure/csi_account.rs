//! democratic-csi's own API key: a service-account user, a privilege that
//! grants exactly the desired roles to the user's group, and a key of that
//! user. What is kiln's (the marker `kiln:<cluster>`, as elsewhere):
//!
//! - **User**: `username` as desired and `full_name` equal to the marker. A
//!   user of that name with another full name is someone else's: kiln
//!   stops with a conflict rather than use or change it.
//! - **Group**: the user's own primary group, made with it
//!   (`group_create`); groups have no field to mark.
//! - **Privilege**: `name` equal to the marker (names are unique). Its
//!   roles are set back to exactly the desired set, and its local groups to
//!   exactly the user's group.
//! - **Key**: a key of the user with `name` equal to the marker. A revoked
//!   one (e.g. used over plain HTTP) is reset, which makes it valid with a
//!   new secret. Key names are unique, so a key named the marker whose user
//!   is gone (the user was deleted by hand) is kiln's and dead: it is
//!   deleted before the new key is made; one of another user's is a
//!   conflict.
//!
//! Nothing else here is ever deleted. A new secret (create or reset) is handed
//! back once, in [`StorageIds::csi_api_key`], for the caller to store:
//! TrueNAS will not show it again.

use std::collections::BTreeSet;

use secrecy::SecretString;

use super::{Change, CsiApiKey, DesiredCsiAccount, Plan, StorageIds};
use crate::api::{Filter, NewApiKey, NewPrivilege, NewServiceUser, PrivilegeUpdate, User};
use crate::client::TruenasClient;
use crate::error::{Error, Result};

/// The changes for the CSI account; reads only.
pub(super) async fn plan_csi_account(
    client: &TruenasClient,
    account: &DesiredCsiAccount,
    marker: &str,
    plan: &mut Plan,
) -> Result<()> {
    let user = kilns_user(client, &account.username, marker).await?;
    if user.is_none() {
        plan.changes.push(Change::CreateCsiUser {
            username: account.username.clone(),
        });
    }
    let wanted_roles: Vec<String> = account.roles.iter().cloned().collect();
    let privileges = client.privileges(&[Filter::eq("name", marker)]).await?;
    match privileges.iter().find(|p| p.name == marker) {
        None => plan.changes.push(Change::CreateCsiPrivilege {
            username: account.username.clone(),
            roles: wanted_roles,
        }),
        Some(ours) => {
            let have: BTreeSet<String> = ours.roles.iter().cloned().collect();
            let groups_right = user.as_ref().is_some_and(|u| ours.gids() == [u.group.gid]);
            if have != account.roles || ours.roles.len() != have.len() || !groups_right {
                plan.changes.push(Change::SetCsiPrivilege {
                    id: ours.id,
                    username: account.username.clone(),
                    added: account.roles.difference(&have).cloned().collect(),
                    removed: have.difference(&account.roles).cloned().collect(),
                    roles: wanted_roles,
                });
            }
        }
    }
    // Key names are unique: the marker may also name a key of a user since
    // deleted (kiln's, dead: deleted before a new one is made), or a key of
    // someone else (a conflict).
    let named = client.api_keys(&[Filter::eq("name", marker)]).await?;
    let named: Vec<_> = named.into_iter().filter(|k| k.name == marker).collect();
    if let Some(theirs) = named
        .iter()
        .find(|k| k.username.as_ref().is_some_and(|u| *u != account.username))
    {
        return Err(Error::Conflict {
            endpoint: client.endpoint().to_owned(),
            reason: format!(
                "API key #{} named {marker:?} belongs to user {}; kiln will not change it",
                theirs.id,
                theirs.username.as_deref().unwrap_or_default()
            ),
        });
    }
    for dead in named.iter().filter(|k| k.username.is_none()) {
        plan.changes.push(Change::DeleteDeadCsiKey { id: dead.id });
    }
    let ours = named
        .iter()
        .find(|k| user.is_some() && k.username.as_deref() == Some(account.username.as_str()));
    match ours {
        None => plan.changes.push(Change::CreateCsiKey {
            username: account.username.clone(),
        }),
        Some(ours) if ours.revoked => plan.changes.push(Change::ResetCsiKey {
            id: ours.id,
            username: account.username.clone(),
        }),
        Some(_) => {}
    }
    Ok(())
}

/// The user `username` if it is kiln's; a conflict if it is someone else's.
async fn kilns_user(client: &TruenasClient, username: &str, marker: &str) -> Result<Option<User>> {
    let users = client.users(&[Filter::eq("username", username)]).await?;
    match users.into_iter().find(|u| u.username == username) {
        Some(user) if user.full_name == marker => Ok(Some(user)),
        Some(_) => Err(Error::Conflict {
            endpoint: client.endpoint().to_owned(),
            reason: format!(
                "user {username} exists and is not kiln's (its full name is not {marker:?}); \
                 kiln will not give it a privilege or a key"
            ),
        }),
        None => Ok(None),
    }
}

/// Makes one CSI-account change; a new key goes into `ids`.
pub(super) async fn apply_csi_change(
    client: &TruenasClient,
    change: Change,
    marker: &str,
    ids: &mut StorageIds,
) -> Result<()> {
    match change {
        Change::CreateCsiUser { username } => {
            client
                .create_service_user(&NewServiceUser {
                    username,
                    full_name: marker.to_owned(),
                })
                .await?;
        }
        Change::CreateCsiPrivilege { username, roles } => {
            let gid = user_gid(client, &username, marker).await?;
            client
                .create_privilege(&NewPrivilege {
                    name: marker.to_owned(),
                    local_groups: vec![gid],
                    roles,
                    web_shell: false,
                })
                .await?;
        }
        Change::SetCsiPrivilege {
            id,
            username,
            roles,
            ..
        } => {
            let gid = user_gid(client, &username, marker).await?;
            client
                .update_privilege(
                    id,
                    &PrivilegeUpdate {
                        local_groups: Some(vec![gid]),
                        roles: Some(roles),
                    },
                )
                .await?;
        }
        Change::CreateCsiKey { username } => {
            let (entry, key) = client
                .create_api_key(&NewApiKey {
                    name: marker.to_owned(),
                    username: username.clone(),
                })
                .await?;
            ids.csi_api_key = Some(CsiApiKey::new(entry.id, username, key));
        }
        Change::DeleteDeadCsiKey { id } => client.delete_api_key(id).await?,
        Change::ResetCsiKey { id, username } => {
            let (entry, key) = client.reset_api_key(id).await?;
            ids.csi_api_key = Some(CsiApiKey::new(entry.id, username, key));
        }
        other => {
            return Err(Error::Config(format!("not a CSI account change: {other}")));
        }
    }
    Ok(())
}

/// The gid of kiln's user's own group (the user exists by now).
async fn user_gid(client: &TruenasClient, username: &str, marker: &str) -> Result<i64> {
    match kilns_user(client, username, marker).await? {
        Some(user) => Ok(user.group.gid),
        None => Err(Error::Conflict {
            endpoint: client.endpoint().to_owned(),
            reason: format!("user {username} is gone; plan again"),
        }),
    }
}

/// A new secret for the CSI key of kiln's user `username` (`api_key.update`
/// with `reset: true`): the old key stops working at once, so store the
/// new one before anything else. The user must be kiln's (its full name a
/// `kiln:` marker) and have exactly one key kiln named (`kiln:…`).
pub async fn rotate_csi_key(client: &TruenasClient, username: &str) -> Result<SecretString> {
    let conflict = |reason: String| Error::Conflict {
        endpoint: client.endpoint().to_owned(),
        reason,
    };
    let users = client.users(&[Filter::eq("username", username)]).await?;
    let Some(user) = users.iter().find(|u| u.username == username) else {
        return Err(conflict(format!("no user {username}: nothing to rotate")));
    };
    if !user.full_name.starts_with("kiln:") {
        return Err(conflict(format!(
            "user {username} is not kiln's (its full name is not a kiln: marker); \
             kiln will not reset its keys"
        )));
    }
    let keys = client.api_keys(&[Filter::eq("username", username)]).await?;
    let ours: Vec<_> = keys.iter().filter(|k| k.name == user.full_name).collect();
    let [key] = ours.as_slice() else {
        return Err(conflict(format!(
            "user {username} has {} keys named {:?}; kiln rotates exactly one",
            ours.len(),
            user.full_name
        )));
    };
    tracing::info!(
        endpoint = client.endpoint(),
        key_id = key.id,
        username,
        "TrueNAS: rotating the CSI API key"
    );
    let (_, secret) = client.reset_api_key(key.id).await?;
    Ok(secret)
}
