//! What kiln ensures on a TrueNAS for a cluster's storage: the part
//! democratic-csi expects an administrator to have done beforehand.
//!
//! [`plan`] only reads, and answers the [`Change`]s that would bring the
//! NAS to the [`DesiredStorage`] (each printable for `kiln plan`, secrets
//! masked); [`apply`] makes them, in order, and answers the ids
//! democratic-csi's configuration needs ([`StorageIds`]). Planning again
//! after an apply finds nothing to do, so a second apply makes no
//! state-changing call at all.
//!
//! # What is kiln's
//!
//! kiln changes only what it made, and recognises it by an exact marker,
//! `kiln:<cluster>` ([`DesiredStorage::marker`]):
//!
//! - **Portal, initiator group, NFS export**: the `comment` field equals the
//!   marker exactly. kiln updates these to the desired state (listen
//!   address; the exact set of node IQNs; the export's path and networks).
//!   Objects with any other comment are never changed or deleted. When a
//!   portal not kiln's already listens on the desired address (TrueNAS
//!   allows one portal per address), kiln uses it as it is.
//! - **Datasets**: created with the user property `kiln:cluster=<cluster>`
//!   and `create_ancestors`. kiln **never deletes a dataset** — not even
//!   its own: a parent holds every volume's data, and an emptied inventory
//!   entry is no reason to lose it. A dataset dropped from the desired
//!   state is simply left alone; an existing dataset is used as it is.
//!   (The one exception is outside `ensure`: the test zvol and dataset
//!   `kiln storage check` makes for itself and removes by the handle it
//!   got, see [`TruenasClient::create_check_lun`](crate::TruenasClient).)
//! - **CHAP credential**: `iscsi.auth` has no comment field, so kiln's is
//!   the one whose `user` equals the configured CHAP user; kiln sets its
//!   secret. Turning CHAP off leaves the credential in place (nothing marks
//!   it as kiln's beyond a name a person may also have chosen).
//! - **Settings and services** are not owned but desired: the global iSCSI
//!   port, NFSv4 on, `iscsitarget` and `nfs` enabled and running. kiln
//!   never turns anything off.
//!
//! - **democratic-csi's API key** ([`DesiredStorage::csi_account`]): a user
//!   whose full name is the marker, a privilege named the marker, a key of
//!   that user named the marker; see `csi_account.rs`. A new key's secret
//!   comes back once, in [`StorageIds::csi_api_key`];
//!   [`rotate_csi_key`] replaces it.
//!
//! An initiator group with no IQNs admits every initiator, so an empty
//! node list is refused rather than written.

mod apply;
mod csi_account;
mod plan;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};

pub use apply::apply;
pub use csi_account::rotate_csi_key;
pub use plan::plan;

use crate::api::NfsProtocol;

/// The storage one cluster needs on the NAS, in plain terms (the caller
/// maps its inventory onto this).
#[derive(Debug, Clone)]
pub struct DesiredStorage {
    /// Names kiln's objects (`kiln:<cluster>`).
    pub cluster: String,
    /// Parent datasets to create when missing, e.g. `tank/k8s/lab/iscsi`,
    /// `tank/k8s/lab/snaps`, `tank/k8s/lab/nfs`.
    pub datasets: Vec<String>,
    pub iscsi: Option<DesiredIscsi>,
    pub nfs: Option<DesiredNfs>,
    /// democratic-csi's own user, privilege and API key; `None` leaves
    /// accounts alone.
    pub csi_account: Option<DesiredCsiAccount>,
}

/// A service account for democratic-csi with exactly these roles (e.g.
/// [`DEMOCRATIC_CSI_ROLES`](crate::DEMOCRATIC_CSI_ROLES)).
#[derive(Debug, Clone)]
pub struct DesiredCsiAccount {
    /// The local user the key belongs to, e.g. `kiln-csi-lab`.
    pub username: String,
    /// The privilege's roles, exactly.
    pub roles: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct DesiredIscsi {
    /// The portal's listen address (`0.0.0.0` for all) and the global
    /// iSCSI port.
    pub portal: SocketAddr,
    /// Exactly the IQNs allowed in (the nodes'; see
    /// [`initiator_name`](crate::initiator_name)).
    pub initiators: BTreeSet<String>,
    pub chap: Option<ChapCredentials>,
}

#[derive(Debug, Clone)]
pub struct ChapCredentials {
    pub user: String,
    /// 12 to 16 characters (TrueNAS's rule).
    pub secret: SecretString,
}

#[derive(Debug, Clone)]
pub struct DesiredNfs {
    /// The dataset exported (its mountpoint, `/mnt/<dataset>`).
    pub dataset: String,
    /// Exactly the networks (CIDR) allowed to mount it: the nodes'.
    pub networks: BTreeSet<String>,
}

impl DesiredStorage {
    /// The exact comment that marks kiln's objects for this cluster.
    pub fn marker(&self) -> String {
        marker(&self.cluster)
    }
}

fn marker(cluster: &str) -> String {
    format!("kiln:{cluster}")
}

/// The ids democratic-csi's driver configuration refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageIds {
    /// `targetGroupPortalGroup` (the portal's `id`, not its UI tag).
    pub portal_id: Option<i64>,
    /// `targetGroupInitiatorGroup`.
    pub initiator_group_id: Option<i64>,
    /// `targetGroupAuthGroup` (CHAP is referred to by tag).
    pub chap_tag: Option<i64>,
    pub nfs_share_id: Option<i64>,
    /// democratic-csi's key, when this apply made it or reset it (store it:
    /// TrueNAS never shows it again); `None` when the key already existed.
    pub csi_api_key: Option<CsiApiKey>,
}

/// An API key just made: `<id>-<secret>`. Debug masks the secret; two are
/// equal when id, user and secret are.
#[derive(Clone)]
pub struct CsiApiKey {
    pub key_id: i64,
    pub username: String,
    pub key: SecretString,
}

impl CsiApiKey {
    fn new(key_id: i64, username: String, key: SecretString) -> Self {
        Self {
            key_id,
            username,
            key,
        }
    }
}

impl fmt::Debug for CsiApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsiApiKey")
            .field("key_id", &self.key_id)
            .field("username", &self.username)
            .field("key", &MASKED)
            .finish()
    }
}

impl PartialEq for CsiApiKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
            && self.username == other.username
            && self.key.expose_secret() == other.key.expose_secret()
    }
}

impl Eq for CsiApiKey {}

/// What [`plan`] found: the changes to make, and the ids of what already
/// exists and stays.
#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub existing: StorageIds,
    /// Whose objects these are (see [`DesiredStorage::marker`]).
    pub cluster: String,
}

/// One change to the NAS. Display is the line `kiln plan` prints.
#[derive(Debug, Clone)]
pub enum Change {
    CreateDataset {
        name: String,
    },
    SetIscsiPort {
        from: u16,
        to: u16,
    },
    CreatePortal {
        ip: String,
    },
    UpdatePortal {
        id: i64,
        from: Vec<String>,
        to: String,
    },
    CreateInitiatorGroup {
        initiators: Vec<String>,
    },
    UpdateInitiatorGroup {
        id: i64,
        added: Vec<String>,
        removed: Vec<String>,
        initiators: Vec<String>,
    },
    CreateChap {
        tag: i64,
        user: String,
        secret: SecretString,
    },
    SetChapSecret {
        id: i64,
        tag: i64,
        user: String,
        secret: SecretString,
    },
    SetNfsProtocols {
        protocols: Vec<NfsProtocol>,
    },
    CreateNfsShare {
        path: String,
        networks: Vec<String>,
    },
    UpdateNfsShare {
        id: i64,
        path: String,
        added: Vec<String>,
        removed: Vec<String>,
        networks: Vec<String>,
    },
    EnableService {
        service: String,
    },
    StartService {
        service: String,
    },
    CreateCsiUser {
        username: String,
    },
    CreateCsiPrivilege {
        username: String,
        roles: Vec<String>,
    },
    SetCsiPrivilege {
        id: i64,
        username: String,
        added: Vec<String>,
        removed: Vec<String>,
        roles: Vec<String>,
    },
    DeleteDeadCsiKey {
        id: i64,
    },
    CreateCsiKey {
        username: String,
    },
    ResetCsiKey {
        id: i64,
        username: String,
    },
}

/// How secrets show in plans.
const MASKED: &str = "********";

fn joined(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateDataset { name } => write!(f, "dataset {name}: create"),
            Change::SetIscsiPort { from, to } => {
                write!(f, "iSCSI: listen on port {to} (now {from})")
            }
            Change::CreatePortal { ip } => write!(f, "iSCSI portal on {ip}: create"),
            Change::UpdatePortal { id, from, to } => write!(
                f,
                "iSCSI portal #{id}: listen on {to} (now {})",
                joined(from)
            ),
            Change::CreateInitiatorGroup { initiators } => write!(
                f,
                "iSCSI initiator group: create with {}",
                joined(initiators)
            ),
            Change::UpdateInitiatorGroup {
                id, added, removed, ..
            } => write!(
                f,
                "iSCSI initiator group #{id}: add {}; remove {}",
                joined(added),
                joined(removed)
            ),
            Change::CreateChap { tag, user, .. } => write!(
                f,
                "iSCSI CHAP credential tag {tag}: create for user {user}, secret {MASKED}"
            ),
            Change::SetChapSecret { tag, user, .. } => write!(
                f,
                "iSCSI CHAP credential tag {tag} (user {user}): set secret {MASKED}"
            ),
            Change::SetNfsProtocols { protocols } => {
                let names: Vec<String> = protocols.iter().map(|p| format!("{p:?}")).collect();
                write!(f, "NFS: serve protocols {}", names.join(", "))
            }
            Change::CreateNfsShare { path, networks } => {
                write!(f, "NFS export {path}: create for {}", joined(networks))
            }
            Change::UpdateNfsShare {
                id,
                path,
                added,
                removed,
                ..
            } => write!(
                f,
                "NFS export #{id} {path}: add {}; remove {}",
                joined(added),
                joined(removed)
            ),
            Change::EnableService { service } => {
                write!(f, "service {service}: start on boot")
            }
            Change::StartService { service } => write!(f, "service {service}: start"),
            Change::CreateCsiUser { username } => write!(
                f,
                "user {username}: create (democratic-csi's service account, no password)"
            ),
            Change::CreateCsiPrivilege { username, roles } => write!(
                f,
                "privilege for {username}'s group: create with roles {}",
                joined(roles)
            ),
            Change::SetCsiPrivilege {
                id,
                username,
                added,
                removed,
                ..
            } => write!(
                f,
                "privilege #{id}: grant to {username}'s group only; add roles {}; remove roles {}",
                joined(added),
                joined(removed)
            ),
            Change::DeleteDeadCsiKey { id } => {
                write!(f, "API key #{id} (kiln's; its user is gone): delete")
            }
            Change::CreateCsiKey { username } => {
                write!(f, "API key for {username}: create (secret {MASKED})")
            }
            Change::ResetCsiKey { id, username } => write!(
                f,
                "API key #{id} of {username} (revoked): reset (secret {MASKED})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-chap-16ch";

    #[test]
    fn changes_read_well_and_hide_secrets() {
        let changes = [
            Change::CreateChap {
                tag: 1,
                user: "kiln-lab".into(),
                secret: SecretString::from(SECRET),
            },
            Change::SetChapSecret {
                id: 3,
                tag: 1,
                user: "kiln-lab".into(),
                secret: SecretString::from(SECRET),
            },
            Change::UpdateInitiatorGroup {
                id: 4,
                added: vec!["iqn.2026-01.invalid.kiln:lab:n3".into()],
                removed: vec![],
                initiators: vec![],
            },
        ];
        for change in &changes {
            for text in [change.to_string(), format!("{change:?}")] {
                assert!(!text.contains(SECRET), "{text}");
            }
        }
        assert_eq!(
            changes[0].to_string(),
            "iSCSI CHAP credential tag 1: create for user kiln-lab, secret ********"
        );
        assert_eq!(
            changes[2].to_string(),
            "iSCSI initiator group #4: add iqn.2026-01.invalid.kiln:lab:n3; remove nothing"
        );
    }
}
