//! What the collector says about the cluster's nodes: the `healthy` step,
//! `kiln drill` (detection, the green check before it breaks anything) and
//! `kiln nightly` all read it through here.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_tls::Trust;

use kiln_collector::{CollectorError, NodeState, NodeView, fetch_nodes};

/// How long one read of the node listing may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the cluster's collector is and how to trust it.
#[derive(Debug, Clone)]
pub struct CollectorLink {
    pub url: String,
    pub trust: Trust,
    pub cluster: String,
}

impl CollectorLink {
    /// The collector's view of this cluster's nodes, by node name.
    pub async fn nodes(&self) -> Result<BTreeMap<String, NodeView>, CollectorError> {
        let listing = fetch_nodes(&self.url, &self.trust, READ_TIMEOUT).await?;
        Ok(listing
            .nodes
            .into_iter()
            .filter(|view| view.cluster == self.cluster)
            .map(|view| (view.node.clone(), view))
            .collect())
    }

    /// `nodes` that are not healthy, each with what the collector says
    /// (its state and failing checks, or that it has never heard of it).
    pub async fn unhealthy(&self, nodes: &[String]) -> Result<Vec<String>, CollectorError> {
        let views = self.nodes().await?;
        Ok(nodes
            .iter()
            .filter_map(|node| match views.get(node) {
                None => Some(format!("{node}: no report yet")),
                Some(view) if view.state == NodeState::Healthy => None,
                Some(view) => Some(describe(view)),
            })
            .collect())
    }
}

/// `node: failing (unit.ssh: inactive; …)`.
pub fn describe(view: &NodeView) -> String {
    let problems: Vec<String> = view
        .checks
        .iter()
        .filter(|check| check.status != kiln_agent::report::Status::Ok)
        .map(|check| format!("{}: {}", check.name, check.detail))
        .collect();
    if problems.is_empty() {
        format!("{}: {}", view.node, view.state)
    } else {
        format!("{}: {} ({})", view.node, view.state, problems.join("; "))
    }
}
