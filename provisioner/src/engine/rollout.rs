//! The agent's part of a node's pipeline: deploy it over SSH (idempotent:
//! an unchanged host is left alone), then wait until the collector hears
//! from it and calls the node healthy. They run only when the inventory has
//! an `agent` section.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_agent::config::{
    AgentConfig, CollectorConfig, CommandCheck, Endpoint, LoadThresholds, Thresholds,
};
use kiln_inventory::Inventory;
use kiln_inventory::model::Agent;

use super::access::AgentRollout;
use super::context::{Context, NodeSlot};
use super::health::{CollectorLink, describe};
use super::poll::{Expired, Look, Pause, poll_until};
use crate::plan::DesiredVm;
use kiln_agent_deploy::{DeployInput, deploy};
use kiln_collector::{NodeState, TokenRegistry};

/// Where the agent reads its token on a host.
const TOKEN_FILE: &str = "/etc/kiln-agent/token";

fn rollout(context: &Context) -> Result<&AgentRollout, String> {
    context
        .agents
        .as_deref()
        .ok_or_else(|| "this run deploys no agents (inventory `agent`)".to_owned())
}

/// The agent's config for `node`, from the inventory's `agent` section.
pub fn agent_config(
    inventory: &Inventory,
    agent: &Agent,
    node: &str,
    collector: &CollectorLink,
) -> Result<AgentConfig, String> {
    let fingerprint = match &collector.trust {
        kiln_tls::Trust::Pin(pin) => pin.to_string(),
        _ => {
            return Err(
                "the agents pin the collector's certificate: it needs a fingerprint".into(),
            );
        }
    };
    let checks = &agent.checks;
    let endpoints = checks
        .endpoints
        .iter()
        .map(|endpoint| {
            let (host, port) = endpoint
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("agent.checks.endpoints: `{endpoint}` is not host:port"))?;
            Ok(Endpoint {
                name: endpoint.clone(),
                host: host.trim_matches(['[', ']']).to_owned(),
                port,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(AgentConfig {
        node: node.to_owned(),
        cluster: inventory.cluster.name.to_string(),
        collector: CollectorConfig {
            url: collector.url.clone(),
            fingerprint,
            token_file: PathBuf::from(TOKEN_FILE),
        },
        interval_secs: u32::try_from(agent.interval.0.as_secs().max(1)).unwrap_or(u32::MAX),
        state_dir: PathBuf::from("/var/lib/kiln-agent"),
        spool_limit: 1000,
        units: checks.units.clone(),
        endpoints,
        dns_names: Vec::new(),
        mounts: checks.mounts.clone(),
        disk: Thresholds {
            warn_percent: checks.disk_warn_percent,
            fail_percent: checks.disk_fail_percent,
        },
        memory: Thresholds {
            warn_percent: 90,
            fail_percent: 98,
        },
        load: LoadThresholds {
            warn_per_cpu: f64::from(checks.load_warn_per_cpu),
            fail_per_cpu: f64::from(checks.load_fail_per_cpu),
        },
        clock_sync: agent.checks.clock_sync,
        commands: checks
            .commands
            .iter()
            .map(|command| CommandCheck {
                name: command.name.clone(),
                run: vec!["/bin/sh".into(), "-c".into(), command.command.clone()],
                timeout_secs: u32::try_from(command.timeout.0.as_secs().max(1)).unwrap_or(u32::MAX),
            })
            .collect(),
    })
}

/// Registers the node's token with the collector and installs the agent
/// (binary, config, token, unit) unless the host already has exactly that.
pub async fn deploy_agent(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let agents = rollout(&context)?;
    let hosts = context
        .hosts
        .as_deref()
        .ok_or_else(|| "deploying the agent needs SSH access (inventory `ssh`)".to_owned())?;
    let agent = context
        .inventory
        .agent
        .as_ref()
        .ok_or_else(|| "the inventory has no `agent` section".to_owned())?;
    let node = wanted.node.as_str();
    let token = agents
        .tokens
        .get(node)
        .ok_or_else(|| format!("node `{node}`: no agent token in the secrets store"))?
        .clone();
    let registry = agents.registry.clone();
    let (cluster, name, registered) = (
        context.inventory.cluster.name.to_string(),
        node.to_owned(),
        token.clone(),
    );
    tokio::task::spawn_blocking(move || {
        TokenRegistry::open(&registry)?.register(&cluster, &name, &registered)
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| format!("node `{node}`: {error}"))?;
    let config = agent_config(&context.inventory, agent, node, &agents.collector)?;
    let input = DeployInput::new(config, token, agents.unit.clone());
    let session = match slot.take_session() {
        Some(session) => session,
        None => kiln_ssh::wait_for_ssh(
            &hosts.target(&wanted),
            &hosts.key,
            &hosts.policy,
            &hosts.timeouts,
            context.timeouts.ssh,
        )
        .await
        .map_err(|error| error.to_string())?,
    };
    let outcome = deploy(&session, &agents.bundle, &input).await;
    session.close().await;
    outcome.map_err(|error| error.to_string())?;
    Ok(())
}

/// Waits until the collector calls the node healthy; on timeout the error
/// lists what the node's agent last said.
pub async fn wait_healthy(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    _slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let agents = rollout(&context)?;
    let node = wanted.node.as_str();
    let pause = Pause {
        first: Duration::from_millis(500),
        max: Duration::from_secs(2),
    };
    poll_until(context.timeouts.healthy, pause, || async {
        match agents.collector.nodes().await {
            Ok(views) => match views.get(node) {
                Some(view) if view.state == NodeState::Healthy => Look::Ready(()),
                Some(view) => Look::Waiting(describe(view)),
                None => Look::Waiting(format!("{node}: the collector has no report from it yet")),
            },
            Err(error) => Look::Waiting(error.to_string()),
        }
    })
    .await
    .map_err(|Expired { waited, last }| {
        format!("node `{node}` not healthy after {waited:.0?}: {last}")
    })
}
