//! From a plan to a graph of steps: one pipeline per node, chained.
//!
//! create:  clone → configure → resize → start → wait_ip
//! replace: destroy → (create)
//! update:  configure → resize → start or reboot (when the VM runs and its
//!          CPU or memory changed, which Proxmox applies only at boot) → wait_ip
//! destroy: destroy (`kiln destroy`, `node remove`, orphans with `--prune`)
//!
//! With an inventory `ssh` section, every pipeline of a node that exists
//! afterwards goes on with wait_ssh, and with an `agent` section with
//! deploy_agent → healthy (a node left as it is gets only these).
//!
//! With a `storage` section, one `truenas` step prepares the NAS for the
//! whole run, and every such node ends with initiator → storage_check
//! (after `truenas` too).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, NodeSlot};
use super::graph::{Graph, Step, StepId};
use super::steps;
use super::storage::{self as node_storage, NodeStorage};
use super::{host, rollout};
use crate::plan::{Action, DesiredVm, NodePlan, OrphanAction, Plan};

pub fn build(plan: &Plan, desired: &[DesiredVm], context: &Arc<Context>) -> Graph {
    let mut graph = Graph::default();
    let mut truenas = None;
    for node_plan in &plan.nodes {
        match desired.iter().find(|vm| vm.node == node_plan.node) {
            Some(wanted) => {
                let wanted = Arc::new(wanted.clone());
                let last = add_node(&mut graph, node_plan, wanted.clone(), context);
                if let (Some(last), Some(_)) = (last, &context.storage) {
                    let prepared = *truenas.get_or_insert_with(|| add_truenas(&mut graph, context));
                    let is_new = matches!(node_plan.action, Action::Create | Action::Replace);
                    add_node_storage(&mut graph, (prepared, last), wanted, is_new, context);
                }
            }
            None if node_plan.action == Action::Destroy => {
                add_destroy(
                    &mut graph,
                    &node_plan.node,
                    &node_plan.pve_node,
                    node_plan.vmid,
                    context,
                );
            }
            None => {}
        }
    }
    for orphan in plan
        .orphans
        .iter()
        .filter(|orphan| orphan.action == OrphanAction::Destroy)
    {
        add_destroy(
            &mut graph,
            &orphan.node,
            &orphan.pve_node,
            Some(orphan.vmid),
            context,
        );
    }
    graph
}

/// Destroys one VM; `None` when the plan knows no VMID (nothing to destroy).
fn add_destroy(
    graph: &mut Graph,
    node: &str,
    pve_node: &str,
    vmid: Option<u32>,
    context: &Arc<Context>,
) -> Option<StepId> {
    let vmid = vmid?;
    let (context, pve_node, name) = (context.clone(), pve_node.to_owned(), node.to_owned());
    let timeout = context.timeouts.destroy;
    Some(
        graph.add(step(node, "destroy", Vec::new(), timeout, async move {
            steps::destroy(context, pve_node, name, vmid).await
        })),
    )
}

/// The steps that only wait: Ctrl-C abandons them instead of letting them end.
const WAIT_IP: &str = "wait_ip";
const WAIT_SSH: &str = "wait_ssh";
const HEALTHY: &str = "healthy";
const WAITS: [&str; 3] = [WAIT_IP, WAIT_SSH, HEALTHY];

fn step(
    node: &str,
    name: &'static str,
    after: Vec<StepId>,
    timeout: Duration,
    work: impl Future<Output = Result<(), String>> + Send + 'static,
) -> Step {
    Step {
        node: Some(node.to_owned()),
        name,
        after,
        timeout,
        abortable: WAITS.contains(&name),
        run: Box::new(move || Box::pin(work)),
    }
}

/// The arguments every VM step takes.
type VmStep<F> = fn(Arc<Context>, Arc<DesiredVm>, Arc<NodeSlot>) -> F;

fn vm_step<F>(
    graph: &mut Graph,
    name: &'static str,
    after: Option<StepId>,
    timeout: Duration,
    work: VmStep<F>,
    (context, wanted, slot): (&Arc<Context>, &Arc<DesiredVm>, &Arc<NodeSlot>),
) -> StepId
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let future = work(context.clone(), wanted.clone(), slot.clone());
    graph.add(step(
        &wanted.node,
        name,
        after.into_iter().collect(),
        timeout,
        future,
    ))
}

/// The node's steps; the last one, when the node exists afterwards and
/// kiln reaches into it.
fn add_node(
    graph: &mut Graph,
    node_plan: &NodePlan,
    wanted: Arc<DesiredVm>,
    context: &Arc<Context>,
) -> Option<StepId> {
    let timeouts = context.timeouts;
    match node_plan.action {
        Action::Nothing => {
            let slot = NodeSlot::with(Some(node_plan.vmid?));
            add_post_boot(graph, None, (context, &wanted, &slot))
        }
        Action::Destroy => {
            add_destroy(
                graph,
                &wanted.node,
                &node_plan.pve_node,
                node_plan.vmid,
                context,
            );
            None
        }
        Action::Create | Action::Replace => {
            let slot = NodeSlot::with(None);
            let parts = (context, &wanted, &slot);
            let last = match node_plan.action {
                Action::Replace => add_destroy(
                    graph,
                    &wanted.node,
                    &node_plan.pve_node,
                    node_plan.vmid,
                    context,
                ),
                _ => None,
            };
            let cloned = vm_step(graph, "clone", last, timeouts.clone, steps::clone, parts);
            let configured = vm_step(
                graph,
                "configure",
                Some(cloned),
                timeouts.configure,
                steps::configure,
                parts,
            );
            let resized = vm_step(
                graph,
                "resize",
                Some(configured),
                timeouts.resize,
                steps::resize,
                parts,
            );
            let started = vm_step(
                graph,
                "start",
                Some(resized),
                timeouts.power,
                steps::start,
                parts,
            );
            let booted = vm_step(
                graph,
                WAIT_IP,
                Some(started),
                timeouts.boot,
                steps::wait_for_address,
                parts,
            );
            add_post_boot(graph, Some(booted), parts)
        }
        Action::Update => {
            let slot = NodeSlot::with(node_plan.vmid);
            let parts = (context, &wanted, &slot);
            let changed =
                |field: &str| node_plan.changes.iter().any(|change| change.field == field);
            let configured = vm_step(
                graph,
                "configure",
                None,
                timeouts.configure,
                steps::configure,
                parts,
            );
            let resized = vm_step(
                graph,
                "resize",
                Some(configured),
                timeouts.resize,
                steps::resize,
                parts,
            );
            let powered = if changed("power") {
                vm_step(
                    graph,
                    "start",
                    Some(resized),
                    timeouts.power,
                    steps::start,
                    parts,
                )
            } else if changed("cores") || changed("memory") {
                vm_step(
                    graph,
                    "reboot",
                    Some(resized),
                    timeouts.power,
                    steps::reboot,
                    parts,
                )
            } else {
                resized
            };
            let booted = vm_step(
                graph,
                WAIT_IP,
                Some(powered),
                timeouts.boot,
                steps::wait_for_address,
                parts,
            );
            add_post_boot(graph, Some(booted), parts)
        }
    }
}

/// The run's one `truenas` step, added with the first node that kiln
/// reaches into (a run that only destroys leaves the NAS alone).
fn add_truenas(graph: &mut Graph, context: &Arc<Context>) -> StepId {
    let work = node_storage::prepare_truenas(context.clone());
    graph.add(Step {
        node: None,
        name: "truenas",
        after: Vec::new(),
        timeout: context.timeouts.storage,
        abortable: false,
        run: Box::new(move || Box::pin(work)),
    })
}

/// initiator → storage_check, the check also after `truenas`.
fn add_node_storage(
    graph: &mut Graph,
    (truenas, last): (StepId, StepId),
    wanted: Arc<DesiredVm>,
    is_new: bool,
    context: &Arc<Context>,
) {
    let state = Arc::new(NodeStorage::default());
    let timeout = context.timeouts.storage;
    let initiator = graph.add(step(
        &wanted.node,
        "initiator",
        vec![last],
        timeout,
        node_storage::set_initiator(context.clone(), wanted.clone(), state.clone()),
    ));
    graph.add(step(
        &wanted.node,
        "storage_check",
        vec![initiator, truenas],
        timeout,
        node_storage::check_after_change(context.clone(), wanted.clone(), state, is_new),
    ));
}

/// The steps inside a booted node, when the inventory asks for them.
fn add_post_boot(
    graph: &mut Graph,
    booted: Option<StepId>,
    parts: (&Arc<Context>, &Arc<DesiredVm>, &Arc<NodeSlot>),
) -> Option<StepId> {
    let context = parts.0;
    context.hosts.as_ref()?;
    let reachable = vm_step(
        graph,
        WAIT_SSH,
        booted,
        context.timeouts.ssh,
        host::wait_for_ssh,
        parts,
    );
    if context.agents.is_none() {
        return Some(reachable);
    }
    let deployed = vm_step(
        graph,
        "deploy_agent",
        Some(reachable),
        context.timeouts.deploy,
        rollout::deploy_agent,
        parts,
    );
    Some(vm_step(
        graph,
        HEALTHY,
        Some(deployed),
        context.timeouts.healthy,
        rollout::wait_healthy,
        parts,
    ))
}
