//! The collector's ingest path on loopback over HTTPS: every refusal with
//! its status and reason, acceptance, node states, metrics, revocation,
//! restart and retention. Reports are built from the agent's wire types.

#![allow(clippy::unwrap_used)]

mod collector_common;

use std::time::Duration;

use collector_common::{Running, check, healthy, report, sample};
use kiln_agent::report::Status;
use kiln_collector::{NodeIdentity, NodeState, RateLimit, ReportStore, Retention, TokenRegistry};
use secrecy::ExposeSecret;

#[tokio::test]
async fn an_accepted_report_is_listed_with_its_state_and_checks() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    let (status, body) = collector.send(&token, &healthy("cp1", 1)).await;
    assert_eq!(status, 202, "{body}");

    let listing = collector.nodes().await;
    assert_eq!(listing.nodes.len(), 1);
    let node = &listing.nodes[0];
    assert_eq!((node.cluster.as_str(), node.node.as_str()), ("home", "cp1"));
    assert_eq!(node.state, NodeState::Healthy);
    assert_eq!(node.sequence, Some(1));
    assert_eq!(node.checks[0].name, "unit.sshd");
    assert!(node.last_report_age_secs.is_some_and(|age| age < 60.0));
}

#[tokio::test]
async fn warn_is_degraded_and_fail_is_failing() {
    let collector = Running::start(|_| {}).await;
    let (w1, w2) = (collector.issue("w1"), collector.issue("w2"));
    let degraded = report(
        "w1",
        1,
        vec![check("system.disk", Status::Warn, "/ at 91%")],
    );
    let failing = report(
        "w2",
        1,
        vec![
            check("system.disk", Status::Warn, "/ at 91%"),
            check("unit.sshd", Status::Fail, "inactive"),
        ],
    );
    assert_eq!(collector.send(&w1, &degraded).await.0, 202);
    assert_eq!(collector.send(&w2, &failing).await.0, 202);
    let listing = collector.nodes().await;
    let state = |name: &str| {
        listing
            .nodes
            .iter()
            .find(|node| node.node == name)
            .map(|node| node.state)
    };
    assert_eq!(state("w1"), Some(NodeState::Degraded));
    assert_eq!(state("w2"), Some(NodeState::Failing));
}

#[tokio::test]
async fn a_node_without_reports_for_three_intervals_is_stale() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    let mut fast = healthy("cp1", 1);
    fast.interval_secs = 1;
    assert_eq!(collector.send(&token, &fast).await.0, 202);
    assert_eq!(collector.nodes().await.nodes[0].state, NodeState::Healthy);
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(collector.nodes().await.nodes[0].state, NodeState::Stale);
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_401() {
    let collector = Running::start(|_| {}).await;
    let body = serde_json::to_vec(&healthy("cp1", 1)).unwrap();
    let (status, text) = collector.post(None, body.clone()).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Authorization"), "{text}");

    let made_up = "kiln_at_c29tZXRoaW5nIHRoYXQgd2FzIG5ldmVyIGlzc3VlZA".into();
    let (status, text) = collector.post(Some(&made_up), body).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("unknown"), "{text}");
    assert!(
        !text.contains(made_up.expose_secret()),
        "the token is echoed: {text}"
    );
}

#[tokio::test]
async fn a_report_for_another_node_is_403() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    collector.issue("w1");
    let (status, text) = collector.send(&token, &healthy("w1", 1)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("`cp1`") && text.contains("`w1`"), "{text}");

    let mut other_cluster = healthy("cp1", 1);
    other_cluster.cluster = "lab".into();
    assert_eq!(collector.send(&token, &other_cluster).await.0, 403);
    assert!(
        collector
            .nodes()
            .await
            .nodes
            .iter()
            .all(|node| node.sequence.is_none())
    );
}

#[tokio::test]
async fn a_replayed_or_older_sequence_is_409_until_a_new_token_is_issued() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    assert_eq!(collector.send(&token, &healthy("cp1", 5)).await.0, 202);
    let (status, text) = collector.send(&token, &healthy("cp1", 5)).await;
    assert_eq!(status, 409, "{text}");
    assert!(
        text.contains("sequence 5") && text.contains("(5)"),
        "{text}"
    );
    assert_eq!(collector.send(&token, &healthy("cp1", 3)).await.0, 409);
    assert_eq!(collector.send(&token, &healthy("cp1", 6)).await.0, 202);

    // A reinstalled agent counts from 1 again under its new token.
    let fresh = collector.issue("cp1");
    assert_eq!(collector.send(&token, &healthy("cp1", 7)).await.0, 401);
    assert_eq!(collector.send(&fresh, &healthy("cp1", 1)).await.0, 202);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_announced_or_streamed() {
    let collector = Running::start(|config| config.body_limit = 4096).await;
    let token = collector.issue("cp1");
    let big = report(
        "cp1",
        1,
        vec![check("command.big", Status::Ok, &"x".repeat(8192))],
    );
    let (status, text) = collector.send(&token, &big).await;
    assert_eq!(status, 413, "{text}");

    let body = serde_json::to_vec(&big).unwrap();
    let status = chunked_post(&collector, &token, &body).await;
    assert_eq!(status, 413);
    assert_eq!(collector.send(&token, &healthy("cp1", 1)).await.0, 202);
}

/// A POST with `Transfer-Encoding: chunked` and no length, written by
/// hand over TLS: the limit must hold when the size is not announced.
async fn chunked_post(collector: &Running, token: &secrecy::SecretString, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = kiln_tls::Trust::Pin(collector.fingerprint)
        .client_config()
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let address = collector.url.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        token.expose_secret()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1024) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the last chunk.
        if tls.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = tls.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"))
}

#[tokio::test]
async fn malformed_json_is_400_with_the_reason() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    let (status, text) = collector.post(Some(&token), b"{not json".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("malformed report") && text.contains("line 1"),
        "{text}"
    );

    let mut missing = serde_json::to_value(healthy("cp1", 1)).unwrap();
    missing.as_object_mut().unwrap().remove("sequence");
    let (status, text) = collector
        .post(Some(&token), serde_json::to_vec(&missing).unwrap())
        .await;
    assert_eq!(status, 400);
    assert!(text.contains("missing field `sequence`"), "{text}");

    let mut newer = healthy("cp1", 1);
    newer.schema = 2;
    let (status, text) = collector.send(&token, &newer).await;
    assert_eq!(status, 400);
    assert!(text.contains("schema 2"), "{text}");
}

#[tokio::test]
async fn a_too_fast_sender_gets_429_with_retry_after() {
    let collector = Running::start(|config| {
        config.rate_limit = RateLimit {
            burst: 3,
            per_second: 0.1,
        };
    })
    .await;
    let token = collector.issue("cp1");
    let other = collector.issue("w1");
    for sequence in 1..=3 {
        assert_eq!(
            collector.send(&token, &healthy("cp1", sequence)).await.0,
            202
        );
    }
    let response = collector
        .http
        .post(format!("{}/api/v1/reports", collector.url))
        .bearer_auth(token.expose_secret())
        .json(&healthy("cp1", 4))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    // The budget is per token: another node is not held back.
    assert_eq!(collector.send(&other, &healthy("w1", 1)).await.0, 202);
}

#[tokio::test]
async fn metrics_count_reports_and_refusals_by_reason_and_show_states() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    collector.issue("w1");
    let failing = report("cp1", 1, vec![check("unit.sshd", Status::Fail, "inactive")]);
    assert_eq!(collector.send(&token, &failing).await.0, 202);
    assert_eq!(collector.send(&token, &failing).await.0, 409);
    assert_eq!(collector.post(None, b"{}".to_vec()).await.0, 401);
    assert_eq!(collector.post(Some(&token), b"[".to_vec()).await.0, 400);

    let (status, metrics) = collector.get("/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str, labels: &str| {
        sample(&metrics, name, labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{metrics}"))
    };
    assert_eq!(
        sample(&metrics, "kiln_collector_reports_received_total", ""),
        None
    );
    assert!(
        metrics.contains("kiln_collector_reports_received_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kiln_collector_reports_accepted_total 1"),
        "{metrics}"
    );
    assert_eq!(
        value(
            "kiln_collector_reports_rejected_total",
            "reason=\"replayed\""
        ),
        1.0
    );
    assert_eq!(
        value(
            "kiln_collector_reports_rejected_total",
            "reason=\"unauthorized\""
        ),
        1.0
    );
    assert_eq!(
        value(
            "kiln_collector_reports_rejected_total",
            "reason=\"malformed\""
        ),
        1.0
    );
    assert_eq!(
        value(
            "kiln_collector_reports_rejected_total",
            "reason=\"too_large\""
        ),
        0.0
    );
    assert_eq!(
        value(
            "kiln_node_state",
            "cluster=\"home\",node=\"cp1\",state=\"failing\""
        ),
        1.0
    );
    assert_eq!(
        value(
            "kiln_node_state",
            "cluster=\"home\",node=\"cp1\",state=\"healthy\""
        ),
        0.0
    );
    assert_eq!(
        value(
            "kiln_node_state",
            "cluster=\"home\",node=\"w1\",state=\"unknown\""
        ),
        1.0
    );
    assert_eq!(
        value(
            "kiln_node_check_status",
            "cluster=\"home\",node=\"cp1\",check=\"unit.sshd\""
        ),
        2.0
    );
    let age = value(
        "kiln_node_last_report_age_seconds",
        "cluster=\"home\",node=\"cp1\"",
    );
    assert!((0.0..60.0).contains(&age), "{age}");
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_its_node_leaves_the_listing() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    let keep = collector.issue("w1");
    assert_eq!(collector.send(&token, &healthy("cp1", 1)).await.0, 202);
    assert_eq!(collector.send(&keep, &healthy("w1", 1)).await.0, 202);
    assert!(collector.registry.revoke("home", "cp1").unwrap());
    assert_eq!(collector.send(&token, &healthy("cp1", 2)).await.0, 401);
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = collector
            .nodes()
            .await
            .nodes
            .into_iter()
            .map(|node| node.node)
            .collect();
        if listed == ["w1"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed, ["w1"]);
}

#[tokio::test]
async fn a_token_revoked_or_replaced_by_another_process_is_refused_on_its_next_request() {
    // No periodic token sync during the test: what refuses the tokens is the
    // check of each report's token in the transaction that would store it.
    let collector = Running::start(|config| {
        config.token_sync_every = Duration::from_secs(3600);
    })
    .await;
    let revoked = collector.issue("cp1");
    let replaced = collector.issue("w1");
    // Both tokens are verified, and so cached, by an accepted report.
    assert_eq!(collector.send(&revoked, &healthy("cp1", 1)).await.0, 202);
    assert_eq!(collector.send(&replaced, &healthy("w1", 1)).await.0, 202);

    // Another connection to the same database, as `kiln destroy` or
    // `kiln agent token` in another process opens.
    let other = TokenRegistry::open(&collector.db_path).unwrap();
    assert!(other.revoke("home", "cp1").unwrap());
    let fresh = other.issue("home", "w1").unwrap();
    drop(other);

    let (status, body) = collector.send(&revoked, &healthy("cp1", 2)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert_eq!(collector.send(&revoked, &healthy("cp1", 3)).await.0, 401);
    assert_eq!(collector.send(&replaced, &healthy("w1", 2)).await.0, 401);
    assert_eq!(collector.send(&fresh, &healthy("w1", 1)).await.0, 202);
    assert_eq!(collector.send(&replaced, &healthy("w1", 3)).await.0, 401);

    let listing = collector.nodes().await;
    let listed: Vec<(&str, Option<u64>)> = listing
        .nodes
        .iter()
        .map(|node| (node.node.as_str(), node.sequence))
        .collect();
    assert_eq!(listed, [("w1", Some(1))]);

    let db_path = collector.db_path.clone();
    let _dir = collector.stop().await;
    let store = ReportStore::open(&db_path, Retention::default()).unwrap();
    let history = |node: &str| -> Vec<u64> {
        let node = NodeIdentity {
            cluster: "home".into(),
            node: node.into(),
        };
        store
            .history(&node, 100)
            .unwrap()
            .iter()
            .map(|stored| stored.report.sequence)
            .collect()
    };
    assert_eq!(history("cp1"), [1], "a refused report was stored");
    assert_eq!(history("w1"), [1, 1], "a refused report was stored");
    store.close().await;
}

#[tokio::test]
async fn reports_survive_a_restart_and_replays_stay_refused() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    for sequence in 1..=3 {
        assert_eq!(
            collector.send(&token, &healthy("cp1", sequence)).await.0,
            202
        );
    }
    let dir = collector.stop().await;
    let again = Running::start_in(dir, |_| {}).await;
    let listing = again.nodes().await;
    assert_eq!(listing.nodes[0].sequence, Some(3));
    assert_eq!(listing.nodes[0].state, NodeState::Healthy);
    assert_eq!(again.send(&token, &healthy("cp1", 3)).await.0, 409);
    assert_eq!(again.send(&token, &healthy("cp1", 4)).await.0, 202);
}

#[tokio::test]
async fn history_is_bounded_per_node() {
    let collector = Running::start(|config| {
        config.retention = Retention {
            per_node: 3,
            max_age: Duration::from_secs(3600),
        };
    })
    .await;
    let token = collector.issue("cp1");
    for sequence in 1..=7 {
        assert_eq!(
            collector.send(&token, &healthy("cp1", sequence)).await.0,
            202
        );
    }
    let db_path = collector.db_path.clone();
    let _dir = collector.stop().await;
    let store = ReportStore::open(&db_path, Retention::default()).unwrap();
    let node = NodeIdentity {
        cluster: "home".into(),
        node: "cp1".into(),
    };
    let kept: Vec<u64> = store
        .history(&node, 100)
        .unwrap()
        .iter()
        .map(|stored| stored.report.sequence)
        .collect();
    assert_eq!(kept, [7, 6, 5]);
    store.close().await;
}

#[tokio::test]
async fn history_older_than_the_retention_is_dropped() {
    let collector = Running::start(|_| {}).await;
    let token = collector.issue("cp1");
    assert_eq!(collector.send(&token, &healthy("cp1", 1)).await.0, 202);
    let db_path = collector.db_path.clone();
    let _dir = collector.stop().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A new store prunes by age on its first write.
    let store = ReportStore::open(
        &db_path,
        Retention {
            per_node: 100,
            max_age: Duration::from_millis(1),
        },
    )
    .unwrap();
    let node = NodeIdentity {
        cluster: "home".into(),
        node: "cp1".into(),
    };
    assert_eq!(store.history(&node, 10).unwrap().len(), 1);
    let next = healthy("cp1", 2);
    store
        .save(kiln_collector::StoredReport {
            report: next,
            received_at_ms: 0,
            token_id: 1,
        })
        .await
        .unwrap();
    assert!(store.history(&node, 10).unwrap().is_empty());
    // The latest report is kept whatever its age: it is the node's state.
    assert_eq!(store.latest().unwrap().len(), 1);
    store.close().await;
}
