//! An in-process collector on 127.0.0.1 with a temp database and kiln's own
//! self-signed certificate, and a pinned HTTPS client for it. Dropping it
//! stops the server and removes the temp dir.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use kiln_agent::report::{Check, REPORT_SCHEMA, REPORTS_PATH, Report, Status};
use kiln_collector::{Collector, CollectorConfig, CollectorIdentity, NodesResponse, TokenRegistry};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Running {
    pub url: String,
    pub fingerprint: kiln_tls::Fingerprint,
    pub db_path: PathBuf,
    pub http: reqwest::Client,
    pub registry: TokenRegistry,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub async fn start(configure: impl FnOnce(&mut CollectorConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, configure).await
    }

    /// A collector on the database and certificate already in `dir`.
    pub async fn start_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut CollectorConfig),
    ) -> Self {
        Self::start_on(dir, 0, configure).await
    }

    /// Like [`Self::start_in`], on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(
        dir: tempfile::TempDir,
        port: u16,
        configure: impl FnOnce(&mut CollectorConfig),
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let collector_dir = dir.path().join("collector");
        let identity = test_identity(&collector_dir);
        let db_path = collector_dir.join("collector.db");
        let mut config = CollectorConfig::new(db_path.clone());
        config.token_sync_every = Duration::from_millis(100);
        configure(&mut config);
        let collector = Collector::open(config).unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = identity.server_config().unwrap();
        let task = tokio::spawn(async move {
            collector
                .serve(listener, tls, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let http = client(identity.fingerprint);
        Self {
            url,
            fingerprint: identity.fingerprint,
            registry: TokenRegistry::open(&db_path).unwrap(),
            db_path,
            http,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    /// Stops the server gracefully and hands back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown().await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the collector did not stop within 20 s")
                .unwrap();
        }
    }

    pub fn issue(&self, node: &str) -> SecretString {
        self.registry.issue("home", node).unwrap()
    }

    pub async fn post(&self, token: Option<&SecretString>, body: Vec<u8>) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}{REPORTS_PATH}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn send(&self, token: &SecretString, report: &Report) -> (u16, String) {
        self.post(Some(token), serde_json::to_vec(report).unwrap())
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn nodes(&self) -> NodesResponse {
        let (status, body) = self.get("/api/v1/nodes").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A reqwest client that trusts exactly the certificate with `fingerprint`.
pub fn client(fingerprint: kiln_tls::Fingerprint) -> reqwest::Client {
    let tls = kiln_tls::Trust::Pin(fingerprint).client_config().unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn check(name: &str, status: Status, detail: &str) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
    }
}

pub fn report(node: &str, sequence: u64, checks: Vec<Check>) -> Report {
    Report {
        schema: REPORT_SCHEMA,
        node: node.into(),
        cluster: "home".into(),
        sequence,
        taken_at_ms: 1_764_489_600_000 + sequence,
        interval_secs: 15,
        agent_version: "0.1.0".into(),
        checks,
    }
}

pub fn healthy(node: &str, sequence: u64) -> Report {
    report(
        node,
        sequence,
        vec![check("unit.sshd", Status::Ok, "active")],
    )
}

/// The value of the sample `name` with exactly `labels` in an exposition.
pub fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// A self-signed identity kept in `dir`, so a restarted collector presents
/// the certificate its agents pinned (kiln keeps it in the secrets store).
fn test_identity(dir: &std::path::Path) -> CollectorIdentity {
    let (cert, key) = (dir.join("test.crt"), dir.join("test.key"));
    if !cert.exists() {
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let tls = kiln_secrets::generated::new_collector_tls("test", &names).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&cert, &tls.cert_pem).unwrap();
        std::fs::write(&key, secrecy::ExposeSecret::expose_secret(&tls.key_pem)).unwrap();
    }
    CollectorIdentity::load(&cert, &key).unwrap()
}
