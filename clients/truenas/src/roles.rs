//! The least TrueNAS roles democratic-csi's key needs (and kiln's own).
//!
//! Derived from the `roles` the 25.10.5 schema (`methods.json`) declares
//! for every method the `freenas-api-iscsi` and `freenas-api-nfs` drivers
//! call (their REST calls mapped to JSON-RPC names). A method's list means
//! "any one of these"; an empty list means any logged-in user.
//! `tests/roles.rs` recomputes [`DEMOCRATIC_CSI_ROLES`] from the vendored
//! schema, so a schema update that changes the answer fails a test.
//!
//! Not derivable here: democratic-csi also calls `filesystem.setperm` and
//! `filesystem.chown` (NFS dataset permissions), `replication.run_onetime`
//! (detached snapshots) and, on its `next` branch, `nvmet.*` (NVMe-oF); none
//! of these are in the schema kiln vendors, so their roles are not known
//! from it (see [`DEMOCRATIC_CSI_METHODS_WITHOUT_SCHEMA`]). Making the key
//! itself (`user.*`, `privilege.*`, `api_key.*`) is described by the second
//! schema file, `methods-accounts.json` (same source, same extraction):
//! [`KILN_CSI_ACCOUNT_ROLES`]. TrueNAS's `role.py` makes most `*_WRITE`
//! roles include their `*_READ` role (not `PRIVILEGE_WRITE`); the method
//! lists do not say so, so both are listed.

use std::collections::{BTreeMap, BTreeSet};

/// democratic-csi's TrueNAS calls by their 25.10 JSON-RPC names, those the
/// schema has.
pub const DEMOCRATIC_CSI_METHODS: &[&str] = &[
    "core.get_jobs",
    "iscsi.extent.create",
    "iscsi.extent.delete",
    "iscsi.extent.get_instance",
    "iscsi.extent.query",
    "iscsi.global.config",
    "iscsi.target.create",
    "iscsi.target.delete",
    "iscsi.target.get_instance",
    "iscsi.target.query",
    "iscsi.target.update",
    "iscsi.targetextent.create",
    "iscsi.targetextent.query",
    "pool.dataset.create",
    "pool.dataset.delete",
    "pool.dataset.destroy_snapshots",
    "pool.dataset.get_instance",
    "pool.dataset.update",
    "pool.snapshot.clone",
    "pool.snapshot.create",
    "pool.snapshot.delete",
    "pool.snapshot.get_instance",
    "pool.snapshot.update",
    "sharing.nfs.create",
    "sharing.nfs.delete",
    "sharing.nfs.get_instance",
    "sharing.nfs.query",
    "system.version",
];

/// democratic-csi's calls the vendored schema does not describe.
pub const DEMOCRATIC_CSI_METHODS_WITHOUT_SCHEMA: &[&str] = &[
    "filesystem.chown",
    "filesystem.setperm",
    "nvmet.*",
    "replication.run_onetime",
    "zfs.snapshot.*",
];

/// The least role set for democratic-csi's API key (sorted).
pub const DEMOCRATIC_CSI_ROLES: &[&str] = &[
    "DATASET_DELETE",
    "DATASET_READ",
    "DATASET_WRITE",
    "SHARING_ISCSI_EXTENT_READ",
    "SHARING_ISCSI_EXTENT_WRITE",
    "SHARING_ISCSI_GLOBAL_READ",
    "SHARING_ISCSI_TARGETEXTENT_READ",
    "SHARING_ISCSI_TARGETEXTENT_WRITE",
    "SHARING_ISCSI_TARGET_READ",
    "SHARING_ISCSI_TARGET_WRITE",
    "SHARING_NFS_READ",
    "SHARING_NFS_WRITE",
    "SNAPSHOT_DELETE",
    "SNAPSHOT_READ",
    "SNAPSHOT_WRITE",
];

/// The methods kiln itself calls to connect, [`ensure`](crate::ensure) and
/// set up `kiln storage check` (what its own key must be allowed).
pub const KILN_METHODS: &[&str] = &[
    "auth.login_ex",
    "auth.login_with_api_key",
    "core.get_jobs",
    "core.subscribe",
    "iscsi.auth.create",
    "iscsi.auth.query",
    "iscsi.auth.update",
    "iscsi.extent.create",
    "iscsi.extent.delete",
    "iscsi.global.config",
    "iscsi.global.update",
    "iscsi.initiator.create",
    "iscsi.initiator.query",
    "iscsi.initiator.update",
    "iscsi.portal.create",
    "iscsi.portal.query",
    "iscsi.portal.update",
    "iscsi.target.create",
    "iscsi.target.delete",
    "iscsi.targetextent.create",
    "iscsi.targetextent.delete",
    "nfs.config",
    "nfs.update",
    "pool.dataset.create",
    "pool.dataset.delete",
    "pool.dataset.query",
    "service.control",
    "service.query",
    "service.update",
    "sharing.nfs.create",
    "sharing.nfs.delete",
    "sharing.nfs.query",
    "sharing.nfs.update",
    "system.version",
];

/// The least role set for kiln's own key (sorted). `service.control` and
/// `service.update` are covered by `SHARING_NFS_WRITE` (any one of their
/// roles will do). `pool.dataset.delete` is only for the storage check's
/// own test zvol and dataset.
/// [`system_info`](crate::TruenasClient::system_info) would add
/// `READONLY_ADMIN`.
pub const KILN_ROLES: &[&str] = &[
    "DATASET_DELETE",
    "DATASET_READ",
    "DATASET_WRITE",
    "SERVICE_READ",
    "SHARING_ISCSI_AUTH_READ",
    "SHARING_ISCSI_AUTH_WRITE",
    "SHARING_ISCSI_EXTENT_WRITE",
    "SHARING_ISCSI_GLOBAL_READ",
    "SHARING_ISCSI_GLOBAL_WRITE",
    "SHARING_ISCSI_INITIATOR_READ",
    "SHARING_ISCSI_INITIATOR_WRITE",
    "SHARING_ISCSI_PORTAL_READ",
    "SHARING_ISCSI_PORTAL_WRITE",
    "SHARING_ISCSI_TARGETEXTENT_WRITE",
    "SHARING_ISCSI_TARGET_WRITE",
    "SHARING_NFS_READ",
    "SHARING_NFS_WRITE",
];

/// The calls kiln makes to keep democratic-csi's account
/// ([`DesiredStorage::csi_account`](crate::ensure::DesiredStorage), and
/// [`rotate_csi_key`](crate::ensure::rotate_csi_key)).
pub const KILN_CSI_ACCOUNT_METHODS: &[&str] = &[
    "api_key.create",
    "api_key.delete",
    "api_key.query",
    "api_key.update",
    "privilege.create",
    "privilege.query",
    "privilege.update",
    "user.create",
    "user.query",
];

/// What kiln's own key needs besides [`KILN_ROLES`] for
/// [`KILN_CSI_ACCOUNT_METHODS`] (sorted). `api_key.create/update/delete`
/// also accept `READONLY_ADMIN`, but `api_key_privilege_check` then limits
/// the caller to its own keys, and the CSI key is another user's: hence
/// `API_KEY_WRITE`.
pub const KILN_CSI_ACCOUNT_ROLES: &[&str] = &[
    "ACCOUNT_READ",
    "ACCOUNT_WRITE",
    "API_KEY_READ",
    "API_KEY_WRITE",
    "PRIVILEGE_READ",
    "PRIVILEGE_WRITE",
];

/// A smallest set of roles that lets every method be called, given each
/// method's "any of these" role list. Roles a method cannot do without
/// come first; methods still uncovered then take the role that covers
/// most of them (ties: alphabetical), which is exact whenever, as in
/// TrueNAS's schema, the remaining lists are already covered.
pub fn least_roles(method_roles: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut chosen: BTreeSet<String> = method_roles
        .values()
        .filter(|roles| roles.len() == 1)
        .flatten()
        .cloned()
        .collect();
    let mut uncovered: Vec<&Vec<String>> = method_roles
        .values()
        .filter(|roles| !roles.is_empty() && !roles.iter().any(|r| chosen.contains(r)))
        .collect();
    // Each pass covers at least one more method, so this ends.
    while !uncovered.is_empty() {
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for roles in &uncovered {
            for role in roles.iter() {
                *counts.entry(role).or_default() += 1;
            }
        }
        let Some(best) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(role, _)| (*role).clone())
        else {
            break;
        };
        uncovered.retain(|roles| !roles.contains(&best));
        chosen.insert(best);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(m, r)| ((*m).to_owned(), r.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn forced_roles_then_the_widest_cover() {
        let needed = least_roles(&roles(&[
            ("a.read", &["A_READ"]),
            ("b.any", &["A_READ", "B_WRITE"]),
            ("c.any", &["C_WRITE", "D_WRITE"]),
            ("d.any", &["D_WRITE", "E_WRITE"]),
            ("open", &[]),
        ]));
        let needed: Vec<&str> = needed.iter().map(String::as_str).collect();
        assert_eq!(needed, ["A_READ", "D_WRITE"]);
    }
}
