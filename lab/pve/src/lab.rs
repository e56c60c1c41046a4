//! Starting and stopping a lab: the public entry point other crates' tests use.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kiln_lab_core::qemu::QemuOptions;
use kiln_lab_core::{LabError, LoggedRequest, RequestLog, ServerTls, https, netns};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::auth::{self, Auth};
use crate::backend::{Backend, BackendKind, NoVolumes, SimBackend, VolumeStore};
use crate::cloudinit::NoCloud;
use crate::faults::{FaultConfig, Faults};
use crate::pve::Cluster;
use crate::pve::state::State;
use crate::qemu::{FileVolumes, QemuBackend};
use crate::schema::ApiSchema;
use crate::server::{self, App};

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    pub backend: BackendKind,
    /// Nodes `pve1`..`pveN`.
    pub nodes: u32,
    /// Loopback only; port 0 picks a free port.
    pub listen: SocketAddr,
    pub faults: Option<FaultConfig>,
    /// Where to append the JSONL request log (it is also kept in memory: `RunningLab::requests`).
    pub request_log: Option<PathBuf>,
    /// From the end of a start task until the guest agent answers (the faults file's
    /// `boot_to_agent_ms` replaces it).
    pub boot_delay: Duration,
    /// How long a task runs unless the faults file sets `task_ms` for its operation.
    pub task_duration: Duration,
    /// Delay before a 401 (PVE waits 3 s).
    pub auth_failure_delay: Duration,
    /// The user (`user@realm`) owning the API token and able to log in with a password.
    pub user: String,
    /// The user's password; random when `None`.
    pub password: Option<String>,
    /// The token name (`user@realm!NAME`).
    pub token_name: String,
    /// The token secret; random (UUID-shaped like PVE's) when `None`.
    pub token_secret: Option<String>,
    /// Required by the qemu backend: its data directory and namespace.
    pub qemu: Option<QemuOptions>,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Sim,
            nodes: 2,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            faults: None,
            request_log: None,
            boot_delay: Duration::from_millis(50),
            task_duration: Duration::from_millis(20),
            auth_failure_delay: Duration::ZERO,
            user: "kiln@pve".to_string(),
            password: None,
            token_name: "kiln".to_string(),
            token_secret: None,
            qemu: None,
        }
    }
}

/// What a client needs to reach a lab; the shape of the credentials file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credentials {
    pub endpoint: String,
    pub fingerprint: String,
    pub token_id: String,
    pub token_secret: String,
    /// A qemu lab's network namespace: `endpoint` is reachable inside it only
    /// (`kiln-lab exec` runs commands there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The same API published on host loopback (`serve --publish`), if asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_endpoint: Option<String>,
}

impl Credentials {
    /// `user@realm!id=secret`, the value of `KILN_PROXMOX_TOKEN`.
    pub fn token(&self) -> String {
        format!("{}={}", self.token_id, self.token_secret)
    }
}

/// A started lab. Dropping it stops the server; `shutdown` also waits for it.
pub struct RunningLab {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// SHA-256 of the certificate, `AB:CD:..` upper-case like PVE shows it.
    pub fingerprint: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// `kiln@pve!kiln`.
    pub token_id: String,
    pub token_secret: String,
    /// `kiln@pve`, for ticket logins.
    pub username: String,
    pub password: String,
    /// The faults seed in force, if a faults file was given.
    pub fault_seed: Option<u64>,
    pub local_addr: SocketAddr,
    /// The qemu lab's network namespace.
    pub namespace: Option<String>,
    /// `https://ADDR` of each extra listener (`start_with_listeners`).
    pub published_endpoints: Vec<String>,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningLab")
            .field("endpoint", &self.endpoint)
            .field("fingerprint", &self.fingerprint)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// Starts a lab and returns once it accepts connections.
pub async fn start(config: LabConfig) -> Result<RunningLab, LabError> {
    start_with_listeners(config, Vec::new()).await
}

/// Starts a lab that also serves on listeners bound beforehand, e.g. a host-loopback port
/// bound before the process entered a qemu lab's network namespace.
pub async fn start_with_listeners(
    config: LabConfig,
    extra: Vec<std::net::TcpListener>,
) -> Result<RunningLab, LabError> {
    let namespace = match (config.backend, &config.qemu) {
        (BackendKind::Sim, _) => {
            if !config.listen.ip().is_loopback() {
                return Err(LabError::NotLoopback(config.listen));
            }
            None
        }
        (BackendKind::Qemu, None) => return Err(LabError::QemuOptionsMissing),
        (BackendKind::Qemu, Some(options)) => {
            // Every address a qemu lab uses lives in its namespace.
            if !netns::inside(&options.namespace) {
                return Err(LabError::NotInNamespace(options.namespace.clone()));
            }
            Some(options.namespace.clone())
        }
    };
    if config.nodes == 0 || config.nodes > 64 {
        return Err(LabError::Config(format!(
            "nodes must be between 1 and 64, not {}",
            config.nodes
        )));
    }
    // Other code in the process may have installed it already; that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let schema = ApiSchema::load()?;
    // HTTP/1.1 only: PVE's messages travel in the reason phrase, which HTTP/2 does not have.
    let server_tls = ServerTls::self_signed("kiln-lab", &[config.listen.ip()], &[b"http/1.1"])?;
    let faults = Faults::new(config.faults.clone());
    let boot_delay = faults.boot_to_agent().unwrap_or(config.boot_delay);
    let (backend, volumes): (Arc<dyn Backend>, Arc<dyn VolumeStore>) = match &config.qemu {
        Some(options) if config.backend == BackendKind::Qemu => {
            let volumes = Arc::new(FileVolumes::under(&options.data_dir));
            let backend = QemuBackend::new(options, Arc::clone(&volumes))
                .await
                .map_err(LabError::Qemu)?;
            (Arc::new(backend), volumes)
        }
        _ => (Arc::new(SimBackend::new(boot_delay)), Arc::new(NoVolumes)),
    };
    let rng = match faults.seed() {
        Some(seed) => ChaCha8Rng::seed_from_u64(seed),
        None => ChaCha8Rng::from_os_rng(),
    };
    let nodes = (1..=config.nodes).map(|i| format!("pve{i}")).collect();
    let cluster = Arc::new(Cluster::new(
        nodes,
        State::new(rng),
        backend,
        volumes,
        config.task_duration,
        faults.storage_lock(),
    ));
    let password = config.password.clone().unwrap_or_else(auth::random_uuid);
    let token_secret = config
        .token_secret
        .clone()
        .unwrap_or_else(auth::random_uuid);
    let token_id = format!("{}!{}", config.user, config.token_name);
    let auth = Auth::new(auth::Credentials {
        user: config.user.clone(),
        password: password.clone(),
        token_id: token_id.clone(),
        token_secret: token_secret.clone(),
    });
    let log = RequestLog::open(config.request_log.as_deref())?;
    let (listener, local_addr) = https::bind(config.listen).await?;
    let app = Arc::new(App {
        schema,
        auth,
        cluster,
        faults,
        log,
        auth_failure_delay: config.auth_failure_delay,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let acceptor = server_tls.acceptor();
    let router = server::router(Arc::clone(&app));
    let mut published_endpoints = Vec::new();
    for extra in extra {
        let (extra, addr) = https::adopt(extra)?;
        published_endpoints.push(format!("https://{addr}"));
        tokio::spawn(https::serve(
            extra,
            acceptor.clone(),
            router.clone(),
            shutdown_rx.clone(),
        ));
    }
    let server = tokio::spawn(https::serve(listener, acceptor, router, shutdown_rx));
    Ok(RunningLab {
        endpoint: format!("https://{local_addr}"),
        fingerprint: server_tls.fingerprint,
        cert_pem: server_tls.cert_pem,
        token_id,
        token_secret,
        username: config.user,
        password,
        fault_seed: app.faults.seed(),
        local_addr,
        namespace,
        published_endpoints,
        app,
        shutdown,
        server: Some(server),
    })
}

impl RunningLab {
    /// `user@realm!id=secret`, the value of `KILN_PROXMOX_TOKEN`.
    pub fn token(&self) -> String {
        format!("{}={}", self.token_id, self.token_secret)
    }

    /// The content of the credentials file.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            endpoint: self.endpoint.clone(),
            fingerprint: self.fingerprint.clone(),
            token_id: self.token_id.clone(),
            token_secret: self.token_secret.clone(),
            namespace: self.namespace.clone(),
            published_endpoint: self.published_endpoints.first().cloned(),
        }
    }

    /// Every request so far, as in the request log.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.app.log.entries()
    }

    /// Puts a cicustom snippet (`local:snippets/NAME`) on every node, as kiln would over SSH.
    pub fn add_snippet(&self, volid: &str, content: &str) {
        self.app
            .cluster
            .lock()
            .snippets
            .insert(volid.to_string(), content.to_string());
    }

    /// Adds a cloud-init-ready template VM (a 2 GiB disk, a cloud-init drive, `agent: 1`,
    /// one virtio NIC on `vmbr0`) without going through the API, like one `kiln image
    /// ensure` would leave behind.
    pub fn add_template(&self, node: &str, vmid: u32, name: &str) -> Result<(), LabError> {
        crate::pve::add_template(&self.app.cluster, node, vmid, name).map_err(LabError::Config)
    }

    /// The NoCloud seed generated at the VM's last start.
    pub fn seed_at_last_start(&self, vmid: u32) -> Option<NoCloud> {
        self.app
            .cluster
            .lock()
            .vms
            .get(&vmid)
            .and_then(|vm| vm.seed.clone())
    }

    /// Stops accepting connections, waits for the server loop to end and stops every guest
    /// (qemu: their QEMU processes).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.app.cluster.backend.stop_all().await;
    }
}

impl Drop for RunningLab {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
