//! One run: the plan's graph, framed by the run's start and end events.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use uuid::Uuid;

use super::context::Context;
use super::graph::{Graph, GraphReport};
use super::pipeline;
use crate::plan::{DesiredVm, Plan, desired_vms};
use kiln_journal::events::{Event, EventSink};

/// Who ran it and on what, for the run's record.
pub struct RunLabel {
    pub command: String,
    pub inventory_hash: String,
    pub operator: String,
}

pub async fn execute(
    context: Arc<Context>,
    plan: &Plan,
    label: RunLabel,
    sink: Arc<dyn EventSink>,
    interrupt: watch::Receiver<bool>,
) -> GraphReport {
    let desired = desired_vms(&context.inventory);
    if plan.has_changes() {
        learn_storage_scopes(&context, &desired).await;
    }
    let graph = pipeline::build(plan, &desired, &context);
    run_framed(graph, context.run, &plan.cluster, label, sink, interrupt).await
}

/// Runs a graph between the run's start and end events (apply's and
/// `kiln image ensure`'s runs alike).
pub async fn run_framed(
    graph: Graph,
    run: Uuid,
    cluster: &str,
    label: RunLabel,
    sink: Arc<dyn EventSink>,
    interrupt: watch::Receiver<bool>,
) -> GraphReport {
    sink.emit(&Event::RunStarted {
        run,
        command: label.command,
        cluster: cluster.to_owned(),
        inventory_hash: label.inventory_hash,
        operator: label.operator,
        at: SystemTime::now(),
    });
    let report = graph.run(run, sink.clone(), interrupt).await;
    sink.emit(&Event::RunFinished {
        run,
        at: SystemTime::now(),
        outcome: report.outcome,
    });
    report
}

/// Lets the client count a node-local storage's slots per node. Without it,
/// clones onto two nodes' local storages would queue behind each other as if
/// the storage were shared; that is only slower, so a failure is a warning.
async fn learn_storage_scopes(context: &Context, desired: &[DesiredVm]) {
    let nodes: BTreeSet<&str> = desired.iter().map(|vm| vm.pve_node.as_str()).collect();
    for node in nodes {
        if let Err(error) = context.client.learn_storage_scopes(node).await {
            tracing::warn!(%node, %error, "cannot read the node's storages; counting them as shared");
        }
    }
}
