//! The agent and the collector end to end on loopback: `kiln-agent`'s own
//! cycle (checks on this host, its pinned HTTPS sender, its sequence file
//! and spool) against an in-process collector. The agent binary adds only
//! argument parsing and signals to this.

#![allow(clippy::unwrap_used)]

mod collector_common;

use std::path::Path;
use std::time::Duration;

use collector_common::Running;
use kiln_agent::agent::Agent;
use kiln_agent::checks::Host;
use kiln_agent::config::AgentConfig;
use kiln_collector::{NodeState, StoredReport};
use secrecy::ExposeSecret;

fn agent_config(collector: &Running, port: u16, state: &Path, token_file: &Path) -> AgentConfig {
    serde_json::from_value(serde_json::json!({
        "node": "cp1",
        "cluster": "home",
        "collector": {
            "url": format!("https://127.0.0.1:{port}"),
            "fingerprint": collector.fingerprint.to_string(),
            "token_file": token_file,
        },
        "interval_secs": 15,
        "state_dir": state,
    }))
    .unwrap()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn write_token(path: &Path, token: &secrecy::SecretString) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, token.expose_secret()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn the_agent_reports_and_its_spool_reaches_the_collector_after_an_outage() {
    let collector = Running::start(|_| {}).await;
    let port = port_of(&collector.url);
    let agent_dir = tempfile::tempdir().unwrap();
    let token_file = agent_dir.path().join("token");
    write_token(&token_file, &collector.issue("cp1"));
    let config = agent_config(
        &collector,
        port,
        &agent_dir.path().join("state"),
        &token_file,
    );
    let mut agent = Agent::new(config.clone(), Host::real()).unwrap();

    let first = agent.cycle().await.unwrap();
    assert_eq!((first.accepted, first.rejected, first.spooled), (1, 0, 0));
    let listing = collector.nodes().await;
    let node = &listing.nodes[0];
    assert_eq!(node.node, "cp1");
    assert_eq!(node.sequence, Some(first.sequence));
    assert_ne!(node.state, NodeState::Unknown);
    assert!(
        node.checks
            .iter()
            .any(|check| check.name.starts_with("system.")),
        "{:?}",
        node.checks
    );
    assert_eq!(
        node.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // The collector goes away: the agent spools.
    let dir = collector.stop().await;
    let during = agent.cycle().await.unwrap();
    assert_eq!((during.accepted, during.spooled), (0, 1));

    // Back on the same port and database: the spool goes first, in order.
    let collector = restart_on(dir, port).await;
    let after = agent.cycle().await.unwrap();
    assert_eq!((after.accepted, after.rejected, after.spooled), (2, 0, 0));
    let node = &collector.nodes().await.nodes[0];
    assert_eq!(node.sequence, Some(after.sequence));
    let history = collector_history(&collector, 10).await;
    assert_eq!(
        history,
        [after.sequence, during.sequence, first.sequence],
        "newest first, nothing lost"
    );

    // A revoked token gets 401, which the agent takes as "keep it for a new token".
    assert!(collector.registry.revoke("home", "cp1").unwrap());
    let refused = agent.cycle().await.unwrap();
    assert_eq!(
        (refused.accepted, refused.rejected, refused.spooled),
        (0, 0, 1)
    );
}

/// A collector on `dir` bound to `port` again (the agent's URL stays put).
async fn restart_on(dir: tempfile::TempDir, port: u16) -> Running {
    for _ in 0..50 {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Running::start_on(dir, port, |_| {}).await
}

async fn collector_history(collector: &Running, limit: u32) -> Vec<u64> {
    let store = kiln_collector::ReportStore::open(&collector.db_path, Default::default()).unwrap();
    let node = kiln_collector::NodeIdentity {
        cluster: "home".into(),
        node: "cp1".into(),
    };
    let kept: Vec<StoredReport> = store.history(&node, limit).unwrap();
    store.close().await;
    kept.iter().map(|stored| stored.report.sequence).collect()
}
