//! TrueNAS storage in a run: the NAS prepared once (`truenas`), each node
//! given its initiator name (`initiator`), then each node proves it can
//! attach (`storage_check`). The check runs only when something changed —
//! the NAS, the node's initiator name, or the node itself is new — so an
//! apply that finds everything in place makes no change on the NAS at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use kiln_secrets::generated::truenas_csi_key;
use kiln_ssh::{Privilege, Session};
use kiln_storage::node::{InitiatorChange, ensure_initiator_name};
use kiln_truenas::ensure::{self, Change, StorageIds};
use kiln_truenas::initiator_name;

use super::access::HostAccess;
use super::context::Context;
use crate::plan::{DesiredVm, StoragePlan};
use crate::storage::{
    NodeCheck, ProbeOutcome, StorageError, StorageSetup, check_node, keep_csi_key,
};

/// The storage part of a run's context.
pub struct StorageRun {
    pub setup: StorageSetup,
    prepared: Mutex<Option<Prepared>>,
}

#[derive(Debug, Clone)]
struct Prepared {
    ids: StorageIds,
    /// The `truenas` step changed something on the NAS.
    changed: bool,
}

impl StorageRun {
    pub fn new(setup: StorageSetup) -> Self {
        Self {
            setup,
            prepared: Mutex::new(None),
        }
    }

    fn prepared(&self) -> Option<Prepared> {
        self.prepared.lock().ok().and_then(|slot| slot.clone())
    }
}

/// What a node's storage steps hand on: whether its initiator name was
/// (re)written in this run.
#[derive(Debug, Default)]
pub struct NodeStorage {
    initiator_written: AtomicBool,
}

fn storage(context: &Context) -> Result<&StorageRun, String> {
    context
        .storage
        .as_deref()
        .ok_or_else(|| "this run has no storage (inventory `storage`)".to_owned())
}

fn hosts(context: &Context) -> Result<&HostAccess, String> {
    context
        .hosts
        .as_deref()
        .ok_or_else(|| "storage on the nodes needs SSH access (inventory `ssh`)".to_owned())
}

/// What the NAS needs, for the plan's `storage` (reads only) — with the
/// CSI key's reset when kiln's store lost a key the NAS still has.
pub async fn storage_plan(run: &StorageRun) -> Result<StoragePlan, StorageError> {
    let plan = ensure::plan(&run.setup.client, &run.setup.desired).await?;
    let mut changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    let makes_key = plan.changes.iter().any(|change| {
        matches!(
            change,
            Change::CreateCsiKey { .. } | Change::ResetCsiKey { .. }
        )
    });
    if let Some(account) = &run.setup.desired.csi_account
        && !makes_key
        && truenas_csi_key(&run.setup.store).await?.is_none()
    {
        changes.push(format!(
            "API key of {}: reset (kiln's store holds none)",
            account.username
        ));
    }
    Ok(StoragePlan { changes })
}

/// Brings the NAS to what the inventory asks (a plan that finds nothing
/// to do sends nothing).
pub async fn prepare_truenas(context: Arc<Context>) -> Result<(), String> {
    let run = storage(&context)?;
    let plan = ensure::plan(&run.setup.client, &run.setup.desired)
        .await
        .map_err(|error| error.to_string())?;
    let changed = !plan.changes.is_empty();
    for change in &plan.changes {
        tracing::info!(%change, "TrueNAS");
    }
    let ids = ensure::apply(&run.setup.client, plan)
        .await
        .map_err(|error| error.to_string())?;
    keep_csi_key(&run.setup, &ids)
        .await
        .map_err(|error| error.to_string())?;
    if let Ok(mut slot) = run.prepared.lock() {
        *slot = Some(Prepared { ids, changed });
    }
    Ok(())
}

/// Writes the node's initiator name unless it already has it.
pub async fn set_initiator(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    node_storage: Arc<NodeStorage>,
) -> Result<(), String> {
    let run = storage(&context)?;
    if run.setup.desired.iscsi.is_none() {
        return Ok(());
    }
    let iqn = initiator_name(&run.setup.desired.cluster, &wanted.node)
        .map_err(|error| format!("node `{}`: {error}", wanted.node))?;
    let session = login(&context, &wanted).await?;
    let privilege = Privilege::root_for(&session.target().user);
    let outcome = ensure_initiator_name(&session, privilege, &wanted.node, &iqn).await;
    session.close().await;
    if outcome.map_err(|error| error.to_string())? == InitiatorChange::Written {
        node_storage
            .initiator_written
            .store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// `kiln storage check` for this node, when anything it depends on changed.
pub async fn check_after_change(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    node_storage: Arc<NodeStorage>,
    node_is_new: bool,
) -> Result<(), String> {
    let run = storage(&context)?;
    let prepared = run
        .prepared()
        .ok_or_else(|| "TrueNAS was not prepared in this run".to_owned())?;
    let changed =
        prepared.changed || node_is_new || node_storage.initiator_written.load(Ordering::Relaxed);
    if !changed {
        return Ok(());
    }
    let session = login(&context, &wanted).await?;
    let check = check_node(
        &run.setup,
        &prepared.ids,
        &session,
        &wanted.node,
        &wanted.address(),
    )
    .await;
    session.close().await;
    match first_failure(&check) {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// Checks `nodes` at once, each over its own SSH session.
pub async fn check_nodes(
    setup: &StorageSetup,
    ids: &StorageIds,
    hosts: &HostAccess,
    nodes: &[DesiredVm],
) -> Vec<NodeCheck> {
    join_all(nodes.iter().map(|node| async move {
        match Session::connect(
            &hosts.target(node),
            &hosts.key,
            &hosts.policy,
            &hosts.timeouts,
        )
        .await
        {
            Ok(session) => {
                let check = check_node(setup, ids, &session, &node.node, &node.address()).await;
                session.close().await;
                check
            }
            Err(error) => unreachable_node(setup, &node.node, &error.to_string()),
        }
    }))
    .await
}

/// A node kiln could not log in to fails every probe at `ssh`.
fn unreachable_node(setup: &StorageSetup, node: &str, error: &str) -> NodeCheck {
    let failed = || ProbeOutcome::Failed {
        step: "ssh".to_owned(),
        message: format!("node `{node}`: {error}"),
    };
    NodeCheck {
        node: node.to_owned(),
        iscsi: setup.settings.iscsi.as_ref().map(|_| failed()),
        nfs: setup.settings.nfs.as_ref().map(|_| failed()),
    }
}

/// The first failed probe's message, naming the protocol and step.
pub fn first_failure(check: &NodeCheck) -> Option<String> {
    [("iSCSI", &check.iscsi), ("NFS", &check.nfs)]
        .into_iter()
        .find_map(|(what, outcome)| match outcome {
            Some(ProbeOutcome::Failed { step, message }) => Some(format!(
                "node `{}`: storage check: {what} failed at `{step}`: {message}",
                check.node
            )),
            _ => None,
        })
}

async fn login(context: &Context, wanted: &DesiredVm) -> Result<Session, String> {
    let hosts = hosts(context)?;
    kiln_ssh::wait_for_ssh(
        &hosts.target(wanted),
        &hosts.key,
        &hosts.policy,
        &hosts.timeouts,
        context.timeouts.ssh,
    )
    .await
    .map_err(|error| error.to_string())
}
