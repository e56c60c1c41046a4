//! Starting and stopping the emulator: the public entry point other crates' tests use.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_lab_core::{LabError, ServerTls, https, netns};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::calllog::{CallLog, LoggedCall};
use crate::datapath::{DataPath, NoDataPath};
use crate::schema::Schema;
use crate::server::{self, App};
use crate::state::State;

/// How to start the emulator.
#[derive(Clone)]
pub struct TruenasConfig {
    /// Loopback, or an address inside a network namespace the caller made; port 0 picks a
    /// free port. Served over TLS, as TrueNAS's nginx serves `/api`.
    pub listen: SocketAddr,
    /// Also serve plain `ws://` here (TrueNAS's port 80 without the HTTPS redirect). A
    /// plain-key login on it from a non-loopback address revokes the key, as TrueNAS does.
    pub plain_listen: Option<SocketAddr>,
    /// Where zvols' sparse files (`zvol/<pool>/<name>`) and datasets' directories
    /// (`mnt/<pool>/<name>`) live; without it nothing is written to disk.
    pub data_dir: Option<PathBuf>,
    /// Where to append one JSON line per call (also kept in memory: `RunningTruenas::calls`).
    pub request_log: Option<PathBuf>,
    pub faults: TruenasFaults,
    /// The servers behind the API (tgt, nfs-ganesha); `None` serves the API alone.
    pub data_path: Option<Arc<dyn DataPath>>,
    /// The network namespace this process runs in (`ip netns` name): then `listen` may be
    /// an address of that namespace; otherwise it must be loopback.
    pub namespace: Option<String>,
}

impl Default for TruenasConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            plain_listen: None,
            data_dir: None,
            request_log: None,
            faults: TruenasFaults::default(),
            data_path: None,
            namespace: None,
        }
    }
}

impl std::fmt::Debug for TruenasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TruenasConfig")
            .field("listen", &self.listen)
            .field("plain_listen", &self.plain_listen)
            .field("data_dir", &self.data_dir)
            .field("request_log", &self.request_log)
            .field("faults", &self.faults)
            .field("data_path", &self.data_path.is_some())
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Faults for clients' tests; the default injects none.
#[derive(Debug, Clone, Default)]
pub struct TruenasFaults {
    /// Once, after this many calls have been answered (counted over all connections), the
    /// connection carrying the next call is closed without an answer.
    pub drop_connection_after: Option<u32>,
    /// A job method (e.g. `service.control`) whose jobs end FAILED with an error.
    pub failing_job: Option<String>,
    /// Added before every call is answered.
    pub call_delay: Option<Duration>,
}

/// What a client needs to reach the emulator; the shape of the credentials file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credentials {
    /// `https://127.0.0.1:PORT`, the base URL as an inventory names a NAS.
    pub endpoint: String,
    /// SHA-256 of the certificate, `AB:CD:..`.
    pub fingerprint: String,
    /// `<id>-<64 alphanumerics>`.
    pub api_key: String,
}

impl std::fmt::Display for Credentials {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.endpoint, self.fingerprint)
    }
}

/// A started emulator. Dropping it stops the server; `shutdown` also waits for it.
pub struct RunningTruenas {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// SHA-256 of the certificate, `AB:CD:..` upper-case, as the PVE lab gives it.
    pub fingerprint: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    pub local_addr: SocketAddr,
    /// `http://ADDR` of the plain listener, when `plain_listen` was set.
    pub plain_endpoint: Option<String>,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningTruenas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTruenas")
            .field("endpoint", &self.endpoint)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Starts the emulator and returns once it accepts connections.
pub async fn start(config: TruenasConfig) -> Result<RunningTruenas, LabError> {
    // Loopback, or an address inside the namespace the caller made: never a host address
    // reachable from outside.
    if let Some(namespace) = &config.namespace
        && !netns::inside(namespace)
    {
        return Err(LabError::NotInNamespace(namespace.clone()));
    }
    for addr in std::iter::once(config.listen).chain(config.plain_listen) {
        let allowed =
            addr.ip().is_loopback() || (config.namespace.is_some() && !addr.ip().is_unspecified());
        if !allowed {
            return Err(LabError::NotLoopback(addr));
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let schema = Schema::load()?;
    // HTTP/1.1 only: a WebSocket upgrade cannot ride on h2 (TrueNAS clients must not offer it).
    let server_tls =
        ServerTls::self_signed("truenas.kiln-lab", &[config.listen.ip()], &[b"http/1.1"])?;
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| LabError::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log = CallLog::open(config.request_log.as_deref())?;
    let data_path: Arc<dyn DataPath> = config
        .data_path
        .clone()
        .unwrap_or_else(|| Arc::new(NoDataPath));
    let host_ips = [config.listen.ip()]
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .collect();
    let state = State::new(config.data_dir.clone(), host_ips).map_err(LabError::Config)?;
    let app = Arc::new(App::new(
        schema,
        state,
        Auth::generate(),
        log,
        config.faults.clone(),
        data_path,
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (listener, local_addr) = https::bind(config.listen).await?;
    let mut servers = vec![tokio::spawn(server::serve(
        listener,
        Some(server_tls.acceptor()),
        Arc::clone(&app),
        shutdown_rx.clone(),
    ))];
    let mut plain_endpoint = None;
    if let Some(plain) = config.plain_listen {
        let (listener, addr) = https::bind(plain).await?;
        plain_endpoint = Some(format!("http://{addr}"));
        servers.push(tokio::spawn(server::serve(
            listener,
            None,
            Arc::clone(&app),
            shutdown_rx,
        )));
    }
    Ok(RunningTruenas {
        endpoint: format!("https://{local_addr}"),
        fingerprint: server_tls.fingerprint,
        cert_pem: server_tls.cert_pem,
        local_addr,
        plain_endpoint,
        app,
        shutdown,
        servers,
    })
}

impl RunningTruenas {
    /// The API key, `<id>-<64 alphanumerics>` (a secret: never log it).
    pub fn api_key(&self) -> &str {
        self.app.auth.key()
    }

    /// The user the key belongs to (`auth.login_ex` needs it).
    pub fn username(&self) -> &str {
        crate::auth::USERNAME
    }

    /// The content of the credentials file.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            endpoint: self.endpoint.clone(),
            fingerprint: self.fingerprint.clone(),
            api_key: self.api_key().to_string(),
        }
    }

    /// Every call so far, as in the request log (secrets masked).
    pub fn calls(&self) -> Vec<LoggedCall> {
        self.app.log.entries()
    }

    /// Whether the key was revoked (a plain-key login over an insecure transport).
    pub fn key_revoked(&self) -> bool {
        self.app.auth.revoked()
    }

    /// Puts a file into a dataset, as a user of the share would: the dataset then holds
    /// data (`used` grows), and with a data dir the file is written under `mnt/`.
    pub fn write_file(&self, dataset: &str, name: &str, bytes: &[u8]) -> Result<(), LabError> {
        self.app
            .state()
            .write_file(dataset, name, bytes)
            .map_err(LabError::Config)
    }

    /// Whether `dataset` exists now (without going through the API and its log).
    pub fn dataset_exists(&self, dataset: &str) -> bool {
        self.app.state().datasets.contains_key(dataset)
    }

    /// Stops accepting connections, waits for the listeners to end and stops the data
    /// path's servers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
        let data_path = Arc::clone(&self.app.data_path);
        let _ = tokio::task::spawn_blocking(move || data_path.shutdown()).await;
    }
}

impl Drop for RunningTruenas {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
