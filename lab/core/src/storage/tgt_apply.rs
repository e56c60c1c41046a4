//! Making tgtd serve exactly a whole desired configuration, as TrueNAS re-renders its iSCSI
//! configuration after every change: the fewest tgtadm calls from what tgtd holds now
//! (its listing) and the CHAP secrets set here (tgtd never shows them back).

use std::collections::{BTreeMap, BTreeSet};

use super::StorageError;
use super::tgt::{ChapDirection, Initiator, Lun, TgtServer};
use super::tgt_show::{LunState, TargetState};

/// One target as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub iqn: String,
    pub luns: Vec<Lun>,
    /// Who may log in. tgt lets an initiator in when its address *or* its name is listed
    /// (measured: address ACL 10.213.7.2 + name ACL iqn.x:good admits iqn.x:bad from .2 and
    /// iqn.x:good from .3); TrueNAS's SCST requires both an allowed group and network.
    pub allowed: Vec<Initiator>,
    pub chap: Option<ChapSpec>,
}

/// CHAP a target requires: the initiator's credential, and for mutual CHAP the target's own.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapSpec {
    pub user: String,
    pub secret: String,
    pub mutual: Option<ChapCredential>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredential {
    pub user: String,
    pub secret: String,
}

impl std::fmt::Debug for ChapSpec {
    // Secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapSpec")
            .field("user", &self.user)
            .field("mutual_user", &self.mutual.as_ref().map(|m| &m.user))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChapCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapCredential")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl TgtServer {
    /// Makes tgtd serve exactly `targets`: targets, LUNs, ACL entries, CHAP accounts and
    /// bindings that are not wanted are removed, missing ones made, a LUN whose backing file,
    /// serial or read-only flag changed is made again. Calling it twice changes nothing the
    /// second time. Stops at the first refused call, naming it.
    pub fn apply(&self, targets: &[TargetSpec]) -> Result<(), StorageError> {
        let accounts = wanted_accounts(targets)?;
        for (user, secret) in &accounts {
            match self.chap_secret(user) {
                Some(current) if current == *secret => {}
                Some(_) => {
                    // A new secret: tgtadm cannot change one; the account is made again
                    // (deleting it unbinds it, the bindings below put it back).
                    self.remove_chap_account(user)?;
                    self.add_chap_account(user, secret)?;
                }
                None => self.add_chap_account(user, secret)?,
            }
        }
        let current: BTreeMap<String, TargetState> = self
            .targets()?
            .into_iter()
            .map(|target| (target.iqn.clone(), target))
            .collect();
        let wanted: BTreeSet<&str> = targets.iter().map(|t| t.iqn.as_str()).collect();
        for iqn in current.keys().filter(|iqn| !wanted.contains(iqn.as_str())) {
            self.remove_target(iqn)?;
        }
        for spec in targets {
            match current.get(&spec.iqn) {
                Some(state) => self.converge(spec, state)?,
                None => {
                    self.add_target(&spec.iqn)?;
                    let empty = TargetState {
                        tid: 0,
                        iqn: spec.iqn.clone(),
                        luns: Vec::new(),
                        accounts: Vec::new(),
                        acl: Vec::new(),
                        sessions: 0,
                    };
                    self.converge(spec, &empty)?;
                }
            }
        }
        for user in self.chap_users() {
            if !accounts.contains_key(&user) {
                self.remove_chap_account(&user)?;
            }
        }
        Ok(())
    }

    /// One existing target to its spec.
    fn converge(&self, spec: &TargetSpec, state: &TargetState) -> Result<(), StorageError> {
        let iqn = &spec.iqn;
        for lun in state.luns.iter().filter(|lun| lun.id != 0) {
            if !spec.luns.iter().any(|wanted| lun_matches(wanted, lun)) {
                self.remove_lun(iqn, lun.id)?;
            }
        }
        for wanted in &spec.luns {
            if !state.luns.iter().any(|lun| lun_matches(wanted, lun)) {
                self.add_lun(iqn, wanted)?;
            }
        }
        let allowed: BTreeSet<String> = spec.allowed.iter().map(acl_entry).collect();
        for entry in state.acl.iter().filter(|entry| !allowed.contains(*entry)) {
            self.disallow(iqn, &acl_initiator(entry))?;
        }
        for initiator in &spec.allowed {
            if !state.acl.contains(&acl_entry(initiator)) {
                self.allow(iqn, initiator)?;
            }
        }
        let mut bindings: Vec<(&str, ChapDirection)> = Vec::new();
        if let Some(chap) = &spec.chap {
            bindings.push((&chap.user, ChapDirection::Incoming));
            if let Some(mutual) = &chap.mutual {
                bindings.push((&mutual.user, ChapDirection::Outgoing));
            }
        }
        // The listing was read after the accounts were made: a re-made account shows unbound.
        let bound: Vec<(&str, ChapDirection)> = state
            .accounts
            .iter()
            .map(|account| (account.user.as_str(), direction(account.outgoing)))
            .collect();
        for &(user, direction) in bound.iter().filter(|b| !bindings.contains(b)) {
            self.unbind_chap(iqn, user, direction)?;
        }
        for &(user, direction) in bindings.iter().filter(|b| !bound.contains(b)) {
            self.bind_chap(iqn, user, direction)?;
        }
        Ok(())
    }
}

/// Whether a LUN tgtd has is the wanted one (the INQUIRY vendor and product are not in
/// tgtd's listing; the backing file, serial and read-only flag are).
fn lun_matches(wanted: &Lun, lun: &LunState) -> bool {
    wanted.id == lun.id
        && lun.backing.as_ref() == Some(&wanted.backing)
        && wanted
            .serial
            .as_ref()
            .is_none_or(|serial| *serial == lun.serial)
        && wanted.read_only == lun.read_only
}

fn direction(outgoing: bool) -> ChapDirection {
    if outgoing {
        ChapDirection::Outgoing
    } else {
        ChapDirection::Incoming
    }
}

/// Every CHAP account the targets need, user → secret; one user with two secrets is refused.
fn wanted_accounts(targets: &[TargetSpec]) -> Result<BTreeMap<String, String>, StorageError> {
    let mut accounts: BTreeMap<String, String> = BTreeMap::new();
    let credentials = targets
        .iter()
        .filter_map(|t| t.chap.as_ref())
        .flat_map(|chap| {
            let incoming = (&chap.user, &chap.secret);
            let outgoing = chap.mutual.as_ref().map(|m| (&m.user, &m.secret));
            std::iter::once(incoming).chain(outgoing)
        });
    for (user, secret) in credentials {
        match accounts.get(user) {
            Some(other) if other != secret => {
                return Err(StorageError::Invalid(format!(
                    "CHAP user {user} is given two different secrets"
                )));
            }
            _ => {
                accounts.insert(user.clone(), secret.clone());
            }
        }
    }
    Ok(accounts)
}

/// How tgtd lists an ACL entry.
fn acl_entry(initiator: &Initiator) -> String {
    match initiator {
        Initiator::Address(address) | Initiator::Name(address) => address.clone(),
    }
}

/// tgtd lists addresses and names in one list: IQN/EUI/NAA names are the names.
fn acl_initiator(entry: &str) -> Initiator {
    let is_name = ["iqn.", "eui.", "naa."]
        .iter()
        .any(|prefix| entry.starts_with(prefix));
    if is_name {
        Initiator::Name(entry.to_string())
    } else {
        Initiator::Address(entry.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chap(user: &str, secret: &str) -> Option<ChapSpec> {
        Some(ChapSpec {
            user: user.to_string(),
            secret: secret.to_string(),
            mutual: None,
        })
    }

    fn target(iqn: &str, chap: Option<ChapSpec>) -> TargetSpec {
        TargetSpec {
            iqn: iqn.to_string(),
            luns: Vec::new(),
            allowed: Vec::new(),
            chap,
        }
    }

    #[test]
    fn one_user_with_two_secrets_is_refused_and_shared_ones_are_one_account() {
        let shared = [
            target("iqn.a", chap("u", "s1")),
            target("iqn.b", chap("u", "s1")),
        ];
        assert_eq!(wanted_accounts(&shared).unwrap().len(), 1);
        let clash = [
            target("iqn.a", chap("u", "s1")),
            target("iqn.b", chap("u", "s2")),
        ];
        let error = wanted_accounts(&clash).unwrap_err().to_string();
        assert!(!error.contains("s1") && !error.contains("s2"), "{error}");
    }

    #[test]
    fn acl_entries_are_told_apart_by_their_form() {
        assert_eq!(
            acl_initiator("iqn.2026-12.lab.kiln:node-1"),
            Initiator::Name("iqn.2026-12.lab.kiln:node-1".to_string())
        );
        assert_eq!(
            acl_initiator("10.77.0.0/24"),
            Initiator::Address("10.77.0.0/24".to_string())
        );
    }

    #[test]
    fn chap_secrets_stay_out_of_debug_output() {
        let spec = ChapSpec {
            user: "u".to_string(),
            secret: "very-secret".to_string(),
            mutual: Some(ChapCredential {
                user: "t".to_string(),
                secret: "also-secret".to_string(),
            }),
        };
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("also-secret"),
            "{shown}"
        );
    }
}
