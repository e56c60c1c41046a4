//! The agent against a real HTTPS collector on 127.0.0.1: pinning, the bearer token, the
//! spool on 5xx and 429, 409 dropped, and the sequence across a restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kiln_agent::agent::Agent;
use kiln_agent::checks::{DiskUsage, FsStats, Host};
use kiln_agent::config::{AgentConfig, CollectorConfig, LoadThresholds, Thresholds};
use kiln_agent::report::REPORTS_PATH;
use kiln_agent::sender::{Delivery, Sender};
use support::collector::TestCollector;

const TOKEN: &str = "agent-token-for-tests";

struct NoDisks;

impl FsStats for NoDisks {
    fn usage(&self, _: &Path) -> Result<DiskUsage, String> {
        Ok(DiskUsage {
            used: 1,
            available: 99,
        })
    }
}

/// The real host, but without the programs the test machine may lack (no units, no
/// commands): what matters here is the delivery, not the checks.
fn host() -> Host {
    Host {
        fs_stats: Arc::new(NoDisks),
        ..Host::real()
    }
}

fn config(dir: &Path, collector: &TestCollector, fingerprint: String) -> AgentConfig {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    AgentConfig {
        node: "cp1".into(),
        cluster: "home".into(),
        collector: CollectorConfig {
            url: collector.url(),
            fingerprint,
            token_file,
        },
        interval_secs: 15,
        state_dir: dir.join("state"),
        spool_limit: 100,
        units: vec![],
        endpoints: vec![],
        dns_names: vec![],
        mounts: vec![],
        disk: Thresholds {
            warn_percent: 85,
            fail_percent: 95,
        },
        memory: Thresholds {
            warn_percent: 90,
            fail_percent: 98,
        },
        load: LoadThresholds::default(),
        clock_sync: true,
        commands: vec![],
    }
}

fn pinned(dir: &Path, collector: &TestCollector) -> AgentConfig {
    config(dir, collector, collector.fingerprint.to_string())
}

#[tokio::test]
async fn the_pinned_collector_gets_the_report_with_the_bearer_token() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::new(pinned(dir.path(), &collector), host()).unwrap();
    let outcome = agent.cycle().await.unwrap();
    assert_eq!((outcome.accepted, outcome.spooled), (1, 0));
    let received = collector.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, REPORTS_PATH);
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer agent-token-for-tests")
    );
    assert_eq!(received[0].report.node, "cp1");
    assert_eq!(received[0].report.sequence, outcome.sequence);
    assert!(
        received[0]
            .report
            .checks
            .iter()
            .any(|c| c.name == "system.memory")
    );
}

#[tokio::test]
async fn a_wrong_fingerprint_is_refused_before_anything_is_sent() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = kiln_tls::Fingerprint::of_der(b"some other certificate").to_string();
    let config = config(dir.path(), &collector, wrong.clone());
    let sender = Sender::new(&config.collector).unwrap();
    let Delivery::Deferred { reason, .. } = sender.send(b"{}".to_vec()).await else {
        panic!("a wrong pin was not refused");
    };
    assert!(reason.contains("fingerprint mismatch"), "{reason}");
    assert!(reason.contains(&wrong), "{reason}");
    assert!(
        reason.contains(&collector.fingerprint.to_string()),
        "{reason}"
    );
    assert!(!reason.contains(TOKEN), "{reason}");
    assert!(
        collector.received().is_empty(),
        "a request reached the collector"
    );
}

#[tokio::test]
async fn reports_are_spooled_on_503_and_resent_in_order_later() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::new(pinned(dir.path(), &collector), host()).unwrap();
    collector.answer_next(503, None);
    let first = agent.cycle().await.unwrap();
    assert_eq!((first.accepted, first.spooled), (0, 1));
    collector.answer_next(503, None);
    let second = agent.cycle().await.unwrap();
    assert_eq!((second.accepted, second.spooled), (0, 2));
    let third = agent.cycle().await.unwrap();
    assert_eq!((third.accepted, third.spooled), (3, 0));
    assert_eq!(
        collector.accepted_sequences(),
        [first.sequence, second.sequence, third.sequence]
    );
}

#[tokio::test]
async fn a_429_keeps_the_report_and_honours_retry_after() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::new(pinned(dir.path(), &collector), host()).unwrap();
    collector.answer_next(429, Some(3600));
    let first = agent.cycle().await.unwrap();
    assert_eq!(first.spooled, 1);
    let second = agent.cycle().await.unwrap();
    assert_eq!(second.spooled, 2);
    assert_eq!(
        collector.received().len(),
        1,
        "sent again inside Retry-After"
    );
}

#[tokio::test]
async fn a_409_is_dropped_not_retried() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::new(pinned(dir.path(), &collector), host()).unwrap();
    collector.answer_next(409, None);
    let first = agent.cycle().await.unwrap();
    assert_eq!((first.rejected, first.spooled), (1, 0));
    let second = agent.cycle().await.unwrap();
    assert_eq!(second.accepted, 1);
    let sent: Vec<u64> = collector
        .received()
        .iter()
        .map(|r| r.report.sequence)
        .collect();
    assert_eq!(sent, [first.sequence, second.sequence]);
}

#[tokio::test]
async fn a_401_is_kept_and_sent_once_the_token_works() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::new(pinned(dir.path(), &collector), host()).unwrap();
    collector.answer_next(401, None);
    let first = agent.cycle().await.unwrap();
    assert_eq!(first.spooled, 1);
    let second = agent.cycle().await.unwrap();
    assert_eq!(
        collector.accepted_sequences(),
        [first.sequence, second.sequence]
    );
}

#[tokio::test]
async fn the_sequence_and_the_spool_survive_a_restart() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = pinned(dir.path(), &collector);
    let mut agent = Agent::new(config.clone(), host()).unwrap();
    let before = agent.cycle().await.unwrap();
    collector.answer_next(500, None);
    let unsent = agent.cycle().await.unwrap();
    assert_eq!(unsent.spooled, 1);
    drop(agent);

    let mut restarted = Agent::new(config, host()).unwrap();
    let after = restarted.cycle().await.unwrap();
    assert!(
        after.sequence > unsent.sequence,
        "{} reused",
        after.sequence
    );
    assert_eq!(
        collector.accepted_sequences(),
        [before.sequence, unsent.sequence, after.sequence]
    );
}

#[tokio::test]
async fn an_unreachable_collector_spools_within_the_limit() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = pinned(dir.path(), &collector);
    // A port nothing listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.collector.url = format!("https://{closed}");
    config.spool_limit = 2;
    let mut agent = Agent::new(config, host()).unwrap();
    let mut sequences = Vec::new();
    for _ in 0..3 {
        let outcome = agent.cycle().await.unwrap();
        sequences.push(outcome.sequence);
        assert!(outcome.spooled <= 2);
    }
    let spool = kiln_agent::spool::Spool::open(&dir.path().join("state"), 2).unwrap();
    let kept: Vec<u64> = spool
        .pending()
        .unwrap()
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(kept, sequences[1..]);
}

/// Ends the agent process when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_keeps_a_401_report_and_never_logs_the_token() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = pinned(dir.path(), &collector);
    config.interval_secs = 1;
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, serde_json::to_string(&config).unwrap()).unwrap();
    collector.answer_next(401, None);
    let mut agent = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_kiln-agent"))
            .args(["run", "--config"])
            .arg(&config_path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if collector.accepted_sequences().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = agent.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut agent.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "SIGTERM is a clean stop: {status}\n{stderr}"
    );
    let received = collector.received();
    assert_eq!(received[0].status, 401);
    let accepted = collector.accepted_sequences();
    assert!(accepted.len() >= 2, "{received:#?}\n{stderr}");
    assert_eq!(
        accepted[0], received[0].report.sequence,
        "the 401 report was not resent first"
    );
    assert!(stderr.contains("401"), "{stderr}");
    assert!(
        !stderr.contains(TOKEN),
        "the token reached the log:\n{stderr}"
    );
}
