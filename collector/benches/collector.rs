//! The collector's ingest rate (`cargo xtask bench`): an in-process
//! collector on 127.0.0.1 and a load generator simulating 1,000 hosts over
//! keep-alive HTTPS connections, with bounded concurrency. Prints reports/s
//! and the p50/p99 latency against the goal of 5,000 reports/s on 2 cores.
//! Client and server share the machine, as they would in CI.
//!
//! The generator is kept cheap so the figure is the collector's: each
//! worker holds one TLS connection (rustls, ring, the collector's pinned
//! certificate) and speaks HTTP/1.1 over it with hyper's connection API;
//! the reports are serialised before the clock starts. Every request is
//! still a full POST with its host's own bearer token and next sequence.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, header};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kiln_agent::report::{Check, REPORT_SCHEMA, REPORTS_PATH, Report, Status};
use kiln_collector::{Collector, CollectorConfig, CollectorIdentity, RateLimit, TokenRegistry};
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HOSTS: usize = 1_000;
const REPORTS: usize = 20_000;
/// Requests in flight at once; each worker keeps one connection alive.
const CONCURRENCY: usize = 64;
const GOAL_PER_SECOND: f64 = 5_000.0;

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let collector_dir = dir.path().join("collector");
    let tls = kiln_secrets::generated::new_collector_tls("bench", &["127.0.0.1".to_owned()])?;
    let identity = CollectorIdentity::from_pem(&tls.cert_pem, &tls.key_pem, "bench")?;
    let db_path = collector_dir.join("collector.db");
    let registry = TokenRegistry::open(&db_path)?;
    let tokens: Vec<SecretString> = (0..HOSTS)
        .map(|host| registry.issue("bench", &host_name(host)))
        .collect::<Result<_, _>>()?;
    drop(registry);

    let mut config = CollectorConfig::new(db_path);
    // Each simulated host sends its reports back to back; the rate limit is
    // not what this measures.
    config.rate_limit = RateLimit {
        burst: u32::try_from(REPORTS / HOSTS + 1)?,
        per_second: 1.0,
    };
    let collector = Collector::open(config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(collector.serve(listener, identity.server_config()?, async {
        let _ = stopped.await;
    }));

    let connector = TlsConnector::from(std::sync::Arc::new(
        kiln_tls::Trust::Pin(identity.fingerprint).client_config()?,
    ));
    let mut plans = (0..CONCURRENCY)
        .map(|worker| plan(worker, &tokens))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let workers: Vec<_> = plans
        .drain(..)
        .map(|requests| {
            let connector = connector.clone();
            tokio::spawn(async move { load(address, &connector, requests).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(REPORTS);
    let mut refused = 0usize;
    for worker in workers {
        let outcome = worker.await??;
        latencies.extend(outcome.latencies);
        refused += outcome.refused;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    server.await??;

    latencies.sort_unstable();
    let sent = latencies.len();
    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "collector ingest: {sent} reports from {HOSTS} hosts, {CONCURRENCY} keep-alive HTTPS connections, 2-core machine"
    );
    println!("  elapsed        {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput     {rate:.0} reports/s   (goal >= {GOAL_PER_SECOND:.0}/s: {})",
        if rate >= GOAL_PER_SECOND {
            "met"
        } else {
            "MISSED"
        }
    );
    println!("  latency p50    {:.2} ms", percentile(&latencies, 0.50));
    println!("  latency p99    {:.2} ms", percentile(&latencies, 0.99));
    if refused > 0 {
        anyhow::bail!("{refused} reports were refused: the figures above are not valid");
    }
    Ok(())
}

struct Outcome {
    latencies: Vec<Duration>,
    refused: usize,
}

/// One report as a host sends it: its `Authorization` value and its body.
struct Planned {
    host: usize,
    authorization: HeaderValue,
    body: Bytes,
}

/// Worker `worker` owns the hosts `worker, worker + CONCURRENCY, …` and
/// sends their reports in rounds, so each host's sequence stays in order.
fn plan(worker: usize, tokens: &[SecretString]) -> anyhow::Result<Vec<Planned>> {
    let hosts: Vec<usize> = (worker..HOSTS).step_by(CONCURRENCY).collect();
    let mut requests = Vec::new();
    for round in 1..=REPORTS / HOSTS {
        for &host in &hosts {
            let mut authorization =
                HeaderValue::from_str(&format!("Bearer {}", tokens[host].expose_secret()))?;
            authorization.set_sensitive(true);
            requests.push(Planned {
                host,
                authorization,
                body: serde_json::to_vec(&report(host, round as u64))?.into(),
            });
        }
    }
    Ok(requests)
}

/// Sends `requests` in order over one keep-alive HTTPS connection.
async fn load(
    address: std::net::SocketAddr,
    connector: &TlsConnector,
    requests: Vec<Planned>,
) -> anyhow::Result<Outcome> {
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::from(address.ip()), tcp)
        .await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
    let connection = tokio::spawn(connection);
    let mut outcome = Outcome {
        latencies: Vec::with_capacity(requests.len()),
        refused: 0,
    };
    for planned in requests {
        let request = Request::post(REPORTS_PATH)
            .header(header::HOST, "127.0.0.1")
            .header(header::AUTHORIZATION, planned.authorization)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(planned.body))?;
        let sent = Instant::now();
        sender.ready().await?;
        let response =
            tokio::time::timeout(Duration::from_secs(30), sender.send_request(request)).await??;
        let status = response.status();
        let _ = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024).await?;
        outcome.latencies.push(sent.elapsed());
        if status.as_u16() != 202 {
            outcome.refused += 1;
            if outcome.refused == 1 {
                eprintln!("host {} : {status}", planned.host);
            }
        }
    }
    drop(sender);
    connection.await??;
    Ok(outcome)
}

fn host_name(host: usize) -> String {
    format!("host{host:04}")
}

fn report(host: usize, sequence: u64) -> Report {
    Report {
        schema: REPORT_SCHEMA,
        node: host_name(host),
        cluster: "bench".into(),
        sequence,
        taken_at_ms: 1_764_489_600_000 + sequence * 15_000,
        interval_secs: 15,
        agent_version: "0.1.0".into(),
        checks: [
            "system.memory",
            "system.disk",
            "unit.sshd",
            "unit.qemu-guest-agent",
            "network.dns",
        ]
        .iter()
        .map(|name| Check {
            name: (*name).into(),
            status: Status::Ok,
            detail: "within thresholds".into(),
        })
        .collect(),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
