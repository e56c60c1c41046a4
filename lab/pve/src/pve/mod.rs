//! PVE's behaviour over the lab's state: one module per group of endpoints. Handlers get
//! validated parameters and return `data` or a PVE error.

mod agent;
mod clone;
mod cluster;
mod config;
mod disks;
mod lifecycle;
mod power;
pub(crate) mod state;
mod storage;
mod task;
mod tasks;
pub(crate) mod vm;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::api::auth::Caller;
use crate::api::params::Upload;
use crate::api::reply::ApiError;
use crate::backend::{Backend, VolumeStore};
use crate::faults::{FaultKind, FaultPlan, StorageLockConfig};
use crate::schema::ApiSchema;
use state::{State, Vm};
use task::TaskResult;

/// The simulated PVE cluster.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<String>,
    state: Mutex<State>,
    pub(crate) backend: Arc<dyn Backend>,
    /// The files behind volumes (none for sim).
    pub(crate) volumes: Arc<dyn VolumeStore>,
    /// How long a task runs when the faults file says nothing.
    pub(crate) task_time: Duration,
    /// Storage allocation locks per (node, storage), when contention is simulated.
    storage_lock: Option<StorageLockConfig>,
    storage_locks: Mutex<HashMap<(String, String), StorageLock>>,
}

/// One storage's allocation lock on one node.
type StorageLock = Arc<tokio::sync::Mutex<()>>;

impl Cluster {
    pub(crate) fn new(
        nodes: Vec<String>,
        state: State,
        backend: Arc<dyn Backend>,
        volumes: Arc<dyn VolumeStore>,
        task_time: Duration,
        storage_lock: Option<StorageLockConfig>,
    ) -> Self {
        Self {
            nodes,
            state: Mutex::new(state),
            backend,
            volumes,
            task_time,
            storage_lock,
            storage_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a storage's allocation lock for the configured hold time, like pve-storage's
    /// `cluster_lock_storage`; fails with PVE's message when it waited too long. Without
    /// simulated contention it returns at once.
    pub(crate) async fn hold_storage_lock(&self, node: &str, storage: &str) -> Result<(), String> {
        let Some(config) = self.storage_lock else {
            return Ok(());
        };
        let lock = {
            let mut locks = self
                .storage_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                locks
                    .entry((node.to_string(), storage.to_string()))
                    .or_default(),
            )
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        match tokio::time::timeout(timeout, lock.lock()).await {
            Ok(_guard) => {
                tokio::time::sleep(Duration::from_millis(config.hold_ms)).await;
                Ok(())
            }
            Err(_) => Err(FaultKind::StorageLock.message(None, storage)),
        }
    }

    /// Marks VMs whose guest powered itself off as stopped (PVE sees the QEMU process gone).
    fn reconcile_power(&self) {
        let mut state = self.lock();
        for vm in state.vms.values_mut().filter(|vm| vm.running) {
            if !self.backend.alive(vm.vmid) {
                vm.running = false;
                vm.pid = None;
                vm.started_at = None;
            }
        }
    }

    /// The state; a panic elsewhere while it was held does not make it unusable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a handler returns: `data`, and `total` for the few lists that carry it.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) data: Value,
    pub(crate) total: Option<usize>,
}

impl From<Value> for Out {
    fn from(data: Value) -> Self {
        Self { data, total: None }
    }
}

/// One request, as handlers see it.
pub(crate) struct Ctx<'a> {
    pub(crate) cluster: &'a Arc<Cluster>,
    /// Path and request parameters, already validated against the schema.
    pub(crate) params: &'a BTreeMap<String, String>,
    pub(crate) upload: Option<&'a Upload>,
    pub(crate) caller: &'a Caller,
    pub(crate) plan: &'a FaultPlan,
    pub(crate) schema: &'a ApiSchema,
}

impl Ctx<'_> {
    pub(crate) fn param(&self, key: &str) -> &str {
        self.params.get(key).map_or("", String::as_str)
    }

    pub(crate) fn opt(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub(crate) fn flag(&self, key: &str) -> Option<bool> {
        self.opt(key).map(vm::is_true)
    }

    pub(crate) fn node(&self) -> &str {
        self.param("node")
    }

    /// The `{vmid}` of the path (validated as an integer by the schema).
    pub(crate) fn vmid(&self) -> u32 {
        self.param("vmid").parse().unwrap_or_default()
    }

    pub(crate) fn task_duration(&self) -> Duration {
        self.plan.task_duration.unwrap_or(self.cluster.task_time)
    }

    /// The task error a fault plan injects, worded for this VM and storage.
    pub(crate) fn injected(&self, vmid: u32, storage: &str) -> Option<String> {
        self.plan.task_error.map(|k| k.message(Some(vmid), storage))
    }

    /// Starts a task of `kind` for VM `vmid` on this request's node. A task
    /// error the fault plan injects fails it before `work` runs, as a PVE
    /// task that dies early does.
    pub(crate) fn spawn_vm_task<F, Fut>(
        &self,
        state: &mut State,
        kind: &str,
        vmid: u32,
        storage: &str,
        work: F,
    ) -> String
    where
        F: FnOnce(Arc<Cluster>) -> Fut + Send + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let injected = self.injected(vmid, storage);
        self.cluster.spawn_task(
            state,
            self.node(),
            kind,
            &vmid.to_string(),
            self.caller,
            self.task_duration(),
            injected,
            move |cluster, injected| async move {
                match injected {
                    Some(message) => Err(message),
                    None => work(cluster).await,
                }
            },
        )
    }
}

/// PVE's error for a VMID that has no config on this node.
pub(crate) fn no_such_vm(node: &str, vmid: u32) -> ApiError {
    ApiError::fail(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// The lab has no pools (`/pools` is not served), so every pool is unknown
/// (`PVE::Pool::assert_pool_exists`).
pub(crate) fn no_such_pool(pool: &str) -> ApiError {
    ApiError::fail(format!("pool '{pool}' does not exist"))
}

/// The VM of the path, on the node of the path.
pub(crate) fn vm_of<'s>(state: &'s State, ctx: &Ctx<'_>) -> Result<&'s Vm, ApiError> {
    state
        .vms
        .get(&ctx.vmid())
        .filter(|vm| vm.node == ctx.node())
        .ok_or_else(|| no_such_vm(ctx.node(), ctx.vmid()))
}

/// `VM is locked (clone)` when a config lock is set.
pub(crate) fn check_unlocked(vm: &Vm) -> Result<(), ApiError> {
    match vm.lock() {
        Some(lock) => Err(ApiError::fail(format!("VM is locked ({lock})"))),
        None => Ok(()),
    }
}

/// The operation name of an endpoint (for faults and docs); `None` if the lab does not serve it.
pub(crate) fn operation(template: &str, method: &str) -> Option<&'static str> {
    let op = match (method, template) {
        ("GET", "/version") => "version",
        ("POST", "/access/ticket") => "ticket",
        ("GET", "/cluster/nextid") => "nextid",
        ("GET", "/cluster/resources") => "resources",
        ("GET", "/nodes") => "nodes",
        ("GET", "/nodes/{node}/qemu") => "list",
        ("POST", "/nodes/{node}/qemu") => "create",
        ("DELETE", "/nodes/{node}/qemu/{vmid}") => "delete",
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => "clone",
        ("GET", "/nodes/{node}/qemu/{vmid}/config") => "config_get",
        ("POST" | "PUT", "/nodes/{node}/qemu/{vmid}/config") => "config",
        ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit/dump") => "cloudinit_dump",
        ("GET", "/nodes/{node}/qemu/{vmid}/pending") => "config_get",
        ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit") => "config_get",
        ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit") => "cloudinit",
        ("GET", "/storage" | "/storage/{storage}") => "storage",
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize") => "resize",
        ("POST", "/nodes/{node}/qemu/{vmid}/status/start") => "start",
        ("POST", "/nodes/{node}/qemu/{vmid}/status/stop") => "stop",
        ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown") => "shutdown",
        ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot") => "reboot",
        ("GET", "/nodes/{node}/qemu/{vmid}/status/current") => "status",
        ("POST", "/nodes/{node}/qemu/{vmid}/template") => "template",
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping") => "agent",
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces") => "agent",
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read") => "agent",
        ("GET", "/nodes/{node}/storage") => "storage",
        ("GET", "/nodes/{node}/storage/{storage}/content") => "content",
        ("POST", "/nodes/{node}/storage/{storage}/upload") => "upload",
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => "download",
        ("GET", "/nodes/{node}/tasks/{upid}/status") => "task_status",
        ("GET", "/nodes/{node}/tasks/{upid}/log") => "task_log",
        ("GET", "/nodes/{node}/tasks") => "task_list",
        ("DELETE", "/nodes/{node}/tasks/{upid}") => "task_stop",
        _ => return None,
    };
    Some(op)
}

/// Runs the handler of a served endpoint (`POST /access/ticket` is answered by the server).
pub(crate) async fn dispatch(ctx: &Ctx<'_>, template: &str, method: &str) -> Result<Out, ApiError> {
    ctx.cluster.reconcile_power();
    if template.starts_with("/nodes/{node}") && !ctx.cluster.nodes.iter().any(|n| n == ctx.node()) {
        let node = ctx.node();
        return Err(ApiError::fail(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )));
    }
    match (method, template) {
        ("GET", "/version") => cluster::version(),
        ("GET", "/cluster/nextid") => cluster::nextid(ctx),
        ("GET", "/cluster/resources") => cluster::resources(ctx),
        ("GET", "/nodes") => cluster::nodes(ctx),
        ("GET", "/nodes/{node}/qemu") => cluster::qemu_list(ctx),
        ("POST", "/nodes/{node}/qemu") => lifecycle::create(ctx),
        ("DELETE", "/nodes/{node}/qemu/{vmid}") => lifecycle::destroy(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/template") => lifecycle::template(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => clone::clone(ctx),
        ("GET", "/nodes/{node}/qemu/{vmid}/config") => config::get(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/config") => config::post(ctx).await,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config") => config::put(ctx).await,
        ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit/dump") => config::dump(ctx),
        ("GET", "/nodes/{node}/qemu/{vmid}/pending") => config::pending(ctx),
        ("GET", "/nodes/{node}/qemu/{vmid}/cloudinit") => config::cloudinit_get(ctx),
        ("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit") => config::cloudinit_put(ctx),
        ("GET", "/storage") => storage::config_list(ctx),
        ("GET", "/storage/{storage}") => storage::config_get(ctx),
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize") => disks::resize(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/start") => power::start(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/stop") => power::stop(ctx, "qmstop"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown") => power::stop(ctx, "qmshutdown"),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot") => power::reboot(ctx),
        ("GET", "/nodes/{node}/qemu/{vmid}/status/current") => power::current(ctx),
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping") => agent::ping(ctx).await,
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces") => {
            agent::interfaces(ctx).await
        }
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/file-read") => agent::file_read(ctx).await,
        ("GET", "/nodes/{node}/storage") => storage::list(ctx),
        ("GET", "/nodes/{node}/storage/{storage}/content") => storage::content(ctx),
        ("POST", "/nodes/{node}/storage/{storage}/upload") => storage::upload(ctx),
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => storage::download(ctx),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => tasks::status(ctx),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => tasks::log(ctx),
        ("GET", "/nodes/{node}/tasks") => tasks::list(ctx),
        ("DELETE", "/nodes/{node}/tasks/{upid}") => tasks::stop(ctx),
        _ => Err(ApiError::NotImplemented(format!(
            "Method '{method} {template}' not implemented by kiln-lab"
        ))),
    }
}

/// Inserts a ready template VM (see `RunningLab::add_template`).
pub(crate) fn add_template(
    cluster: &Arc<Cluster>,
    node: &str,
    vmid: u32,
    name: &str,
) -> Result<(), String> {
    if !cluster.nodes.iter().any(|n| n == node) {
        return Err(format!("no such node '{node}'"));
    }
    let mut state = cluster.lock();
    if state.vms.contains_key(&vmid) {
        return Err(format!("VM {vmid} already exists"));
    }
    let disk = format!("local-lvm:base-{vmid}-disk-0");
    let cloudinit = format!("local-lvm:vm-{vmid}-cloudinit");
    state.add_volume(disks::new_volume(
        node,
        "local-lvm",
        &disk,
        "raw",
        2 << 30,
        vmid,
        None,
    ));
    state.add_volume(disks::new_volume(
        node,
        "local-lvm",
        &cloudinit,
        "raw",
        4 << 20,
        vmid,
        None,
    ));
    let mac = state.random_mac();
    let config = BTreeMap::from([
        ("name".to_string(), name.to_string()),
        ("template".to_string(), "1".to_string()),
        ("agent".to_string(), "1".to_string()),
        ("cores".to_string(), "1".to_string()),
        ("memory".to_string(), "1024".to_string()),
        ("ostype".to_string(), "l26".to_string()),
        ("scsihw".to_string(), "virtio-scsi-single".to_string()),
        ("scsi0".to_string(), format!("{disk},size=2G")),
        ("ide2".to_string(), format!("{cloudinit},media=cdrom")),
        ("boot".to_string(), "order=scsi0".to_string()),
        ("serial0".to_string(), "socket".to_string()),
        ("vga".to_string(), "serial0".to_string()),
        ("net0".to_string(), format!("virtio={mac},bridge=vmbr0")),
    ]);
    state.vms.insert(vmid, Vm::new(vmid, node, config));
    Ok(())
}
