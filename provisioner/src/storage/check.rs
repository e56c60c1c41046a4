//! `kiln storage check` for one node: kiln makes a small test LUN and a test
//! export on TrueNAS for that node alone, the node attaches, writes and
//! reads back through its own kernel (`kiln-storage`), and both are removed
//! again — whatever happened on the node.

use std::time::{Duration, Instant};

use kiln_inventory::model::{Iscsi, Nfs};
use kiln_ssh::{Privilege, Session};
use kiln_storage::node::{Chap, IscsiProbe, NfsProbe, ProbeStep, probe_iscsi, probe_nfs};
use kiln_truenas::CheckLunRequest;
use kiln_truenas::ensure::{self, StorageIds};
use serde::Serialize;

use super::StorageError;
use super::desired::{StorageSetup, reachable_portal};

/// The test LUN is this small: mkfs and one file are all it holds.
const CHECK_LUN_BYTES: u64 = 64 * 1024 * 1024;
/// TrueNAS names (target, zvol) are at most 64 characters.
const CHECK_NAME_LIMIT: usize = 64;

/// One node's result: each protocol the inventory uses, passed with its
/// timed steps or failed at a named step.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCheck {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<ProbeOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfs: Option<ProbeOutcome>,
}

impl NodeCheck {
    pub fn passed(&self) -> bool {
        [&self.iscsi, &self.nfs]
            .into_iter()
            .flatten()
            .all(|outcome| matches!(outcome, ProbeOutcome::Passed { .. }))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum ProbeOutcome {
    Passed {
        #[serde(serialize_with = "millis")]
        took: Duration,
        steps: Vec<ProbeStep>,
    },
    Failed {
        /// The step that failed: on TrueNAS (`prepare`, `remove`) or on the
        /// node (`discovery`, `login`, `mount`, …).
        step: String,
        message: String,
    },
}

fn millis<S: serde::Serializer>(took: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(took.as_millis()).unwrap_or(u64::MAX))
}

/// The ids of what `kiln apply` prepared; a NAS that still needs changes
/// is not ready for a check.
pub async fn prepared_ids(setup: &StorageSetup) -> Result<StorageIds, StorageError> {
    let plan = ensure::plan(&setup.client, &setup.desired).await?;
    if plan.changes.is_empty() {
        return Ok(plan.existing.clone());
    }
    let missing: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    Err(StorageError::NotPrepared {
        missing: missing.join("; "),
    })
}

/// Checks `node` (logged in as `session`) against the prepared NAS.
pub async fn check_node(
    setup: &StorageSetup,
    ids: &StorageIds,
    session: &Session,
    node: &str,
    node_ip: &str,
) -> NodeCheck {
    let privilege = Privilege::root_for(&session.target().user);
    let name = check_name(node);
    let on_node = (session, privilege, node);
    let iscsi = match &setup.settings.iscsi {
        Some(iscsi) => Some(timed(check_iscsi(setup, iscsi, ids, on_node, &name)).await),
        None => None,
    };
    let nfs = match &setup.settings.nfs {
        Some(nfs) => Some(timed(check_nfs(setup, nfs, on_node, node_ip, &name)).await),
        None => None,
    };
    NodeCheck {
        node: node.to_owned(),
        iscsi,
        nfs,
    }
}

type Probed = Result<Vec<ProbeStep>, (String, String)>;

/// Where a probe runs: the session, as root through `privilege`, on `node`.
type OnNode<'a> = (&'a Session, Privilege, &'a str);

/// A failed call to TrueNAS as the probe's failure at `step`.
fn on_nas(step: &'static str) -> impl Fn(kiln_truenas::Error) -> (String, String) {
    move |error| (step.to_owned(), error.to_string())
}

async fn timed(probe: impl Future<Output = Probed>) -> ProbeOutcome {
    let started = Instant::now();
    match probe.await {
        Ok(steps) => ProbeOutcome::Passed {
            took: started.elapsed(),
            steps,
        },
        Err((step, message)) => ProbeOutcome::Failed { step, message },
    }
}

async fn check_iscsi(
    setup: &StorageSetup,
    settings: &Iscsi,
    ids: &StorageIds,
    (session, privilege, node): OnNode<'_>,
    name: &str,
) -> Probed {
    let (Some(portal_id), Some(initiator_group_id), Some(desired)) =
        (ids.portal_id, ids.initiator_group_id, &setup.desired.iscsi)
    else {
        return Err((
            "prepare".to_owned(),
            "TrueNAS has no portal or initiator group of this cluster: run `kiln apply`".to_owned(),
        ));
    };
    let request = CheckLunRequest {
        name: name.to_owned(),
        parent: settings.dataset.clone(),
        size_bytes: CHECK_LUN_BYTES,
        portal_id,
        initiator_group_id,
        chap_tag: desired.chap.as_ref().and(ids.chap_tag),
    };
    let lun = setup
        .client
        .create_check_lun(&request)
        .await
        .map_err(on_nas("prepare"))?;
    let probe = IscsiProbe {
        portal: reachable_portal(&setup.settings, desired.portal).to_string(),
        target: lun.iqn.clone(),
        chap: desired.chap.as_ref().map(|chap| Chap {
            user: chap.user.clone(),
            secret: chap.secret.clone(),
        }),
    };
    let probed = probe_iscsi(session, privilege, node, &probe).await;
    let removed = setup.client.remove_check_lun(lun).await;
    let steps = probed.map_err(|error| (error.step().to_owned(), error.to_string()))?;
    removed.map_err(on_nas("remove"))?;
    Ok(steps)
}

async fn check_nfs(
    setup: &StorageSetup,
    nfs: &Nfs,
    (session, privilege, node): OnNode<'_>,
    node_ip: &str,
    name: &str,
) -> Probed {
    let share = setup
        .client
        .create_check_share(name, &nfs.dataset, &[format!("{node_ip}/32")])
        .await
        .map_err(on_nas("prepare"))?;
    let probe = NfsProbe {
        server: nfs.server.clone(),
        export: share.path.clone(),
        options: nfs.mount_options.clone(),
    };
    let probed = probe_nfs(session, privilege, node, &probe).await;
    let removed = setup.client.remove_check_share(share).await;
    let steps = probed.map_err(|error| (error.step().to_owned(), error.to_string()))?;
    removed.map_err(on_nas("remove"))?;
    Ok(steps)
}

/// `kiln-check-<node>`, within TrueNAS's 64 characters (node names are
/// already lower-case letters, digits and `-`).
fn check_name(node: &str) -> String {
    let mut name = format!("kiln-check-{node}");
    name.truncate(CHECK_NAME_LIMIT);
    name.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_fit_truenas() {
        assert_eq!(check_name("node1"), "kiln-check-node1");
        let long = check_name(&"a".repeat(63));
        assert_eq!(long.len(), CHECK_NAME_LIMIT);
        assert_eq!(
            check_name(&format!("{}-b", "a".repeat(52))),
            format!("kiln-check-{}", "a".repeat(52))
        );
    }

    #[test]
    fn a_node_passes_only_when_every_probe_passed() {
        let passed = ProbeOutcome::Passed {
            took: Duration::from_millis(5),
            steps: Vec::new(),
        };
        let failed = ProbeOutcome::Failed {
            step: "login".to_owned(),
            message: "node `a`: iSCSI: login: …".to_owned(),
        };
        let check = |iscsi, nfs| NodeCheck {
            node: "a".to_owned(),
            iscsi,
            nfs,
        };
        assert!(check(Some(passed.clone()), None).passed());
        assert!(!check(Some(passed.clone()), Some(failed.clone())).passed());
        let json = serde_json::to_value(check(Some(passed), Some(failed))).unwrap();
        assert_eq!(json["iscsi"]["outcome"], "passed");
        assert_eq!(json["nfs"]["step"], "login");
    }
}
