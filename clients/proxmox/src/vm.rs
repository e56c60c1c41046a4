//! VM lifecycle: VMID allocation, create, clone, config, resize, power,
//! delete, template, status.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use backon::Retryable;
use regex::Regex;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::config::{AgentOption, NetDevice, VmConfig, VmConfigUpdate};
use crate::de;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::task::{TaskHandle, TaskOutcome};
use crate::vmids::VmidReservation;
use crate::wire::{Body, endpoint, seg};

/// How many candidate ids one allocation checks before giving up.
const VMID_SCAN: u32 = 1000;
/// How many times a clone picks a fresh id after `already exists`.
const CLONE_CONFLICT_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// DNS name of the new VM.
    pub name: Option<String>,
    /// `Some(false)` = linked clone (templates only); `None` = PVE's default.
    pub full: Option<bool>,
    /// Target node; needs all source disks on shared storage.
    pub target: Option<String>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// `raw`, `qcow2` or `vmdk` (full clones only).
    pub format: Option<String>,
    pub pool: Option<String>,
    pub description: Option<String>,
    pub snapname: Option<String>,
    pub bwlimit_kib: Option<u64>,
}

/// A disk of a new VM (`POST /nodes/{node}/qemu`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewDisk {
    /// A new disk on `storage` filled from `source`, a volume with content
    /// `import` (`local:import/debian.qcow2`) or another VM's disk.
    Import { storage: String, source: String },
    /// An empty disk of `size_gib` GiB.
    Empty { storage: String, size_gib: u64 },
    /// The cloud-init drive PVE regenerates at every start.
    CloudInit { storage: String },
}

impl NewDisk {
    fn render(&self) -> String {
        match self {
            // `STORAGE:0,import-from=…`: the size comes from the source.
            NewDisk::Import { storage, source } => format!("{storage}:0,import-from={source}"),
            NewDisk::Empty { storage, size_gib } => format!("{storage}:{size_gib}"),
            NewDisk::CloudInit { storage } => format!("{storage}:cloudinit"),
        }
    }
}

/// A VM to create, in the keys of the PVE 9.1 schema for
/// `POST /nodes/{node}/qemu`. Unset fields are left to PVE's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateVm {
    /// 100–999999999.
    pub vmid: u32,
    pub name: Option<String>,
    pub cores: Option<u32>,
    pub memory_mib: Option<u64>,
    /// `l26` for Linux.
    pub ostype: Option<String>,
    /// `virtio-scsi-single`, `virtio-scsi-pci`, `lsi`, …
    pub scsihw: Option<String>,
    /// By slot: `scsi0`, `ide2`, `virtio0`, …
    pub disks: Vec<(String, NewDisk)>,
    /// `netN` devices by index.
    pub nets: Vec<(u8, NetDevice)>,
    /// Serial ports backed by a host socket (`serialN: socket`), 0–3.
    pub serial_sockets: Vec<u8>,
    /// `std`, `serial0`, `virtio`, …
    pub vga: Option<String>,
    pub agent: Option<AgentOption>,
    /// `boot: order=scsi0;net0`.
    pub boot_order: Vec<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub pool: Option<String>,
}

static VGA_TYPES: &[&str] = &[
    "cirrus",
    "qxl",
    "qxl2",
    "qxl3",
    "qxl4",
    "none",
    "serial0",
    "serial1",
    "serial2",
    "serial3",
    "std",
    "virtio",
    "virtio-gl",
    "vmware",
];
static SCSIHW: &[&str] = &[
    "lsi",
    "lsi53c810",
    "virtio-scsi-pci",
    "virtio-scsi-single",
    "megasas",
    "pvscsi",
];

impl CreateVm {
    /// The request parameters, or the first value the schema would refuse.
    pub fn params(&self) -> Result<Params> {
        if !(100..=999_999_999).contains(&self.vmid) {
            return Err(Error::Invalid(format!(
                "vmid {} is outside 100..=999999999",
                self.vmid
            )));
        }
        if let Some(vga) = self.vga.as_deref().filter(|v| !VGA_TYPES.contains(v)) {
            return Err(Error::Invalid(format!("vga {vga:?} is not a VGA type")));
        }
        if let Some(hw) = self.scsihw.as_deref().filter(|h| !SCSIHW.contains(h)) {
            return Err(Error::Invalid(format!(
                "scsihw {hw:?} is not a SCSI controller"
            )));
        }
        if let Some(port) = self.serial_sockets.iter().find(|port| **port > 3) {
            return Err(Error::Invalid(format!("serial{port}: index must be 0..=3")));
        }
        if let Some((slot, _)) = self
            .disks
            .iter()
            .find(|(slot, _)| !DISK_RE.as_ref().is_some_and(|r| r.is_match(slot)))
        {
            return Err(Error::Invalid(format!("{slot:?} is not a disk slot")));
        }
        // The keys `/config` also takes are validated by its builder.
        let mut config = VmConfigUpdate::new();
        if let Some(name) = &self.name {
            config = config.name(name);
        }
        if let Some(cores) = self.cores {
            config = config.cores(cores);
        }
        if let Some(mib) = self.memory_mib {
            config = config.memory_mib(mib);
        }
        for (index, net) in &self.nets {
            config = config.net(*index, net);
        }
        if let Some(agent) = self.agent {
            config = config.agent(agent);
        }
        if !self.tags.is_empty() {
            config = config.tags(&self.tags);
        }
        if let Some(description) = &self.description {
            config = config.description(description);
        }
        let mut params = config
            .params()?
            .set("vmid", self.vmid)
            .set_opt("ostype", self.ostype.as_deref())
            .set_opt("scsihw", self.scsihw.as_deref())
            .set_opt("vga", self.vga.as_deref())
            .set_opt("pool", self.pool.as_deref());
        for (slot, disk) in &self.disks {
            params = params.set(slot, disk.render());
        }
        for port in &self.serial_sockets {
            params = params.set(&format!("serial{port}"), "socket");
        }
        if !self.boot_order.is_empty() {
            params = params.set("boot", format!("order={}", self.boot_order.join(";")));
        }
        Ok(params)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Also remove the VMID from backup jobs, replication and HA.
    pub purge: bool,
    /// Also delete `vm-N-*` disks not referenced in the config.
    pub destroy_unreferenced_disks: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownOptions {
    /// Seconds PVE waits for the guest.
    pub timeout_secs: Option<u32>,
    /// Hard-stop the VM if the guest has not shut down in time.
    pub force_stop: bool,
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// QMP state (`running`, `paused`, `prelaunch`, …); may differ from `status`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub qmpstatus: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub lock: Option<String>,
    /// The config flag, not whether the agent answers.
    #[serde(default, deserialize_with = "de::bool01")]
    pub agent: bool,
    #[serde(default, deserialize_with = "de::bool01")]
    pub template: bool,
    #[serde(default, deserialize_with = "de::tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub cpus: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
}

impl VmStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

static SIZE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\+?\d+(\.\d+)?[KMGT]?$").ok());
static DISK_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^(ide[0-3]|sata[0-5]|scsi([0-9]|[12][0-9]|30)|virtio([0-9]|1[0-5])|efidisk0|tpmstate0)$",
    )
    .ok()
});

pub(crate) fn vm_path(node: &str, vmid: u32, tail: &str) -> String {
    if tail.is_empty() {
        format!("/nodes/{}/qemu/{vmid}", seg(node))
    } else {
        format!("/nodes/{}/qemu/{vmid}/{tail}", seg(node))
    }
}

impl ProxmoxClient {
    /// Sends a mutating call while holding this node's (and storage's)
    /// concurrency slot; the slot travels in the handle until waited for.
    pub(crate) async fn dispatch(
        &self,
        method: Method,
        path: &str,
        params: Params,
        target: &Target,
        storage: Option<&str>,
    ) -> Result<TaskHandle> {
        let node = target.node.as_deref().unwrap_or_default();
        let ep = endpoint(&method, path);
        let body = Body::Params(params);
        // The slot is taken per attempt, so a call backing off after
        // `VM is locked` does not keep others on the node waiting.
        let attempt = || async {
            let permits = self.inner.limits.acquire(node, storage).await;
            let data = self.call_once(method.clone(), path, &body, target).await?;
            Ok((permits, data))
        };
        let (permits, data) = attempt
            .retry(self.inner.config.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(Error::is_retryable)
            .notify(|e, after| tracing::debug!(error = %e, ?after, "retrying Proxmox call"))
            .await?;
        TaskHandle::from_data(data, &ep, target, permits)
    }

    /// `GET /cluster/nextid`: the lowest free id (reserves nothing).
    pub async fn next_id(&self) -> Result<u32> {
        let ep = endpoint(&Method::GET, "/cluster/nextid");
        let v: Value = self
            .get("/cluster/nextid", Params::new(), &Target::default())
            .await?;
        de::id_value(&v).ok_or_else(|| Error::Decode {
            endpoint: ep,
            target: Target::default(),
            reason: format!("nextid is not a number: {v}"),
        })
    }

    /// `GET /cluster/nextid?vmid=N`: `false` when PVE says it already exists.
    pub async fn vmid_is_free(&self, vmid: u32) -> Result<bool> {
        let r: Result<Value> = self
            .get(
                "/cluster/nextid",
                Params::new().set("vmid", vmid),
                &Target {
                    node: None,
                    vmid: Some(vmid),
                },
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reserves a VMID no other caller of this client can get: the lowest id
    /// at or above `from` (default: PVE's nextid) that is neither reserved
    /// here nor known to PVE. Nextid's own answer needs no second question;
    /// any other candidate is checked with `nextid?vmid=`.
    pub async fn allocate_vmid(&self, from: Option<u32>) -> Result<VmidReservation> {
        let (start, free_per_pve) = match from {
            Some(n) => (n, None),
            None => {
                let next = self.next_id().await?;
                (next, Some(next))
            }
        };
        let mut candidate = start;
        for _ in 0..VMID_SCAN {
            if let Some(reservation) = self.inner.vmids.reserve(candidate)
                && (free_per_pve == Some(candidate) || self.vmid_is_free(candidate).await?)
            {
                return Ok(reservation);
            }
            candidate = candidate.saturating_add(1);
        }
        Err(Error::VmidExhausted {
            start,
            attempts: VMID_SCAN,
        })
    }

    /// `POST /nodes/{node}/qemu`: creates a VM (a `qmcreate` task). Disks
    /// with `import-from` are copied in by that task.
    pub async fn create_vm(&self, node: &str, vm: &CreateVm) -> Result<TaskHandle> {
        let params = vm.params()?;
        let storage = vm.disks.iter().find_map(|(_, disk)| match disk {
            NewDisk::Import { storage, .. } | NewDisk::Empty { storage, .. } => {
                Some(storage.as_str())
            }
            NewDisk::CloudInit { .. } => None,
        });
        self.dispatch(
            Method::POST,
            &format!("/nodes/{}/qemu", seg(node)),
            params,
            &Target::vm(node, vm.vmid),
            storage,
        )
        .await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/clone`.
    pub async fn clone_vm(
        &self,
        node: &str,
        vmid: u32,
        newid: u32,
        opts: &CloneOptions,
    ) -> Result<TaskHandle> {
        let params = Params::new()
            .set("newid", newid)
            .set_opt("name", opts.name.as_deref())
            .flag_opt("full", opts.full)
            .set_opt("target", opts.target.as_deref())
            .set_opt("storage", opts.storage.as_deref())
            .set_opt("format", opts.format.as_deref())
            .set_opt("pool", opts.pool.as_deref())
            .set_opt("description", opts.description.as_deref())
            .set_opt("snapname", opts.snapname.as_deref())
            .set_opt("bwlimit", opts.bwlimit_kib);
        let target_node = opts.target.as_deref().unwrap_or(node);
        let target = Target::vm(target_node, newid);
        self.dispatch(
            Method::POST,
            &vm_path(node, vmid, "clone"),
            params,
            &target,
            // Linked clones allocate on the template's storage, unknown here;
            // the source node stands in for it so clones still queue.
            Some(opts.storage.as_deref().unwrap_or(node)),
        )
        .await
    }

    /// Clones into a freshly allocated VMID and waits for the task; when the
    /// id turns out to be taken (another client raced us), picks another.
    /// Returns the new VMID.
    pub async fn clone_new(
        &self,
        node: &str,
        vmid: u32,
        opts: &CloneOptions,
        from: Option<u32>,
    ) -> Result<(u32, TaskOutcome)> {
        let mut last = None;
        for _ in 0..CLONE_CONFLICT_ATTEMPTS {
            let reservation = self.allocate_vmid(from).await?;
            let newid = reservation.vmid();
            match self.run(|| self.clone_vm(node, vmid, newid, opts)).await {
                Ok(outcome) => return Ok((newid, outcome)),
                Err(e) if e.is_conflict() => {
                    if self.is_our_clone(node, newid, opts).await {
                        return Ok((
                            newid,
                            TaskOutcome {
                                upid: None,
                                exitstatus: None,
                                warnings: 0,
                            },
                        ));
                    }
                    tracing::debug!(newid, error = %e, "VMID taken meanwhile, picking another");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::VmidExhausted {
            start: from.unwrap_or_default(),
            attempts: CLONE_CONFLICT_ATTEMPTS,
        }))
    }

    /// After `already exists` on an id this process reserved: was it our
    /// own earlier attempt, whose answer was lost (timeout, reset) although
    /// PVE ran it? Recognised by name and description, then waited until
    /// its clone lock clears. Without a name there is no telling, so no.
    async fn is_our_clone(&self, node: &str, newid: u32, opts: &CloneOptions) -> bool {
        let Some(name) = opts.name.as_deref() else {
            return false;
        };
        let target = opts.target.as_deref().unwrap_or(node);
        let Ok(mut cfg) = self.vm_config(target, newid).await else {
            return false;
        };
        // A clone still running shows only a temporary config; any other
        // lock means the VM is busy with something that is not our clone.
        if cfg.lock().as_deref() == Some("clone") {
            let timeout = self.inner.config.task_timeout;
            if self.wait_unlocked(target, newid, timeout).await.is_err() {
                return false;
            }
            match self.vm_config(target, newid).await {
                Ok(fresh) => cfg = fresh,
                Err(_) => return false,
            }
        }
        cfg.name().as_deref() == Some(name)
            && opts
                .description
                .as_deref()
                .is_none_or(|d| cfg.description().as_deref() == Some(d))
    }

    /// `GET /nodes/{node}/qemu`: the VMs on one node.
    pub async fn node_vms(&self, node: &str) -> Result<Vec<crate::cluster::VmResource>> {
        let mut vms: Vec<crate::cluster::VmResource> = self
            .get(
                &format!("/nodes/{}/qemu", seg(node)),
                Params::new(),
                &Target::node(node),
            )
            .await?;
        for vm in &mut vms {
            if vm.node.is_empty() {
                vm.node = node.to_owned();
            }
        }
        Ok(vms)
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config` (pending values applied).
    pub async fn vm_config(&self, node: &str, vmid: u32) -> Result<VmConfig> {
        self.get(
            &vm_path(node, vmid, "config"),
            Params::new(),
            &Target::vm(node, vmid),
        )
        .await
    }

    /// `POST …/config`: asynchronous; prefer it for hotplug and storage.
    pub async fn update_config(
        &self,
        node: &str,
        vmid: u32,
        update: &VmConfigUpdate,
    ) -> Result<TaskHandle> {
        let params = update.params()?;
        self.dispatch(
            Method::POST,
            &vm_path(node, vmid, "config"),
            params,
            &Target::vm(node, vmid),
            None,
        )
        .await
    }

    /// `PUT …/config`: synchronous, done when it returns.
    pub async fn update_config_sync(
        &self,
        node: &str,
        vmid: u32,
        update: &VmConfigUpdate,
    ) -> Result<()> {
        let params = update.params()?;
        if params.contains("background_delay") {
            return Err(Error::Invalid(
                "background_delay is only accepted by the asynchronous POST /config".into(),
            ));
        }
        let handle = self
            .dispatch(
                Method::PUT,
                &vm_path(node, vmid, "config"),
                params,
                &Target::vm(node, vmid),
                None,
            )
            .await?;
        // PUT answers null; a UPID here would be a server deviation worth waiting on.
        self.wait(handle).await.map(drop)
    }

    /// `PUT …/cloudinit`: regenerate the drive of a running VM.
    pub async fn regenerate_cloudinit(&self, node: &str, vmid: u32) -> Result<()> {
        let _: Value = self
            .put(
                &vm_path(node, vmid, "cloudinit"),
                Params::new(),
                &Target::vm(node, vmid),
            )
            .await?;
        Ok(())
    }

    /// `PUT …/resize`: `size` like `+10G` (grow) or `32G` (absolute). PVE ≥ 8.0
    /// answers a task, older releases null; both come back as a handle.
    pub async fn resize(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
    ) -> Result<TaskHandle> {
        if !SIZE_RE.as_ref().is_some_and(|r| r.is_match(size)) {
            return Err(Error::Invalid(format!(
                "resize size {size:?} must look like +10G or 32G"
            )));
        }
        if !DISK_RE.as_ref().is_some_and(|r| r.is_match(disk)) {
            return Err(Error::Invalid(format!(
                "resize disk {disk:?} is not a disk slot"
            )));
        }
        let params = Params::new().set("disk", disk).set("size", size);
        self.dispatch(
            Method::PUT,
            &vm_path(node, vmid, "resize"),
            params,
            &Target::vm(node, vmid),
            None,
        )
        .await
    }

    async fn power(
        &self,
        node: &str,
        vmid: u32,
        action: &str,
        params: Params,
    ) -> Result<TaskHandle> {
        self.dispatch(
            Method::POST,
            &vm_path(node, vmid, &format!("status/{action}")),
            params,
            &Target::vm(node, vmid),
            None,
        )
        .await
    }

    pub async fn start(&self, node: &str, vmid: u32) -> Result<TaskHandle> {
        self.power(node, vmid, "start", Params::new()).await
    }

    /// Hard power-off.
    pub async fn stop(&self, node: &str, vmid: u32) -> Result<TaskHandle> {
        self.power(node, vmid, "stop", Params::new()).await
    }

    /// ACPI/agent shutdown.
    pub async fn shutdown(
        &self,
        node: &str,
        vmid: u32,
        opts: ShutdownOptions,
    ) -> Result<TaskHandle> {
        let params = Params::new()
            .set_opt("timeout", opts.timeout_secs)
            .flag_opt("forceStop", opts.force_stop.then_some(true));
        self.power(node, vmid, "shutdown", params).await
    }

    pub async fn reboot(&self, node: &str, vmid: u32) -> Result<TaskHandle> {
        self.power(node, vmid, "reboot", Params::new()).await
    }

    /// Starts the VM and waits; a VM that is already running counts as done
    /// (a retried start whose first answer was lost lands here).
    pub async fn ensure_running(&self, node: &str, vmid: u32) -> Result<TaskOutcome> {
        match self.run(|| self.start(node, vmid)).await {
            Err(e)
                if e.pve_message()
                    .is_some_and(|m| m.contains("already running")) =>
            {
                Ok(TaskOutcome {
                    upid: None,
                    exitstatus: None,
                    warnings: 0,
                })
            }
            other => other,
        }
    }

    pub async fn vm_status(&self, node: &str, vmid: u32) -> Result<VmStatus> {
        self.get(
            &vm_path(node, vmid, "status/current"),
            Params::new(),
            &Target::vm(node, vmid),
        )
        .await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}`.
    pub async fn delete_vm(
        &self,
        node: &str,
        vmid: u32,
        opts: DeleteOptions,
    ) -> Result<TaskHandle> {
        let params = Params::new()
            .flag_opt("purge", opts.purge.then_some(true))
            .flag_opt(
                "destroy-unreferenced-disks",
                opts.destroy_unreferenced_disks.then_some(true),
            );
        self.dispatch(
            Method::DELETE,
            &vm_path(node, vmid, ""),
            params,
            &Target::vm(node, vmid),
            None,
        )
        .await
    }

    /// `POST …/template`: turn a stopped VM into a template.
    pub async fn make_template(&self, node: &str, vmid: u32) -> Result<TaskHandle> {
        self.dispatch(
            Method::POST,
            &vm_path(node, vmid, "template"),
            Params::new(),
            &Target::vm(node, vmid),
            None,
        )
        .await
    }

    /// Polls `status/current` until no `lock` is set (a clone's target stays
    /// locked until its task ends; touching it earlier fails).
    pub async fn wait_unlocked(&self, node: &str, vmid: u32, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            let status = self.vm_status(node, vmid).await?;
            let Some(lock) = status.lock.filter(|l| !l.is_empty()) else {
                return Ok(());
            };
            if started.elapsed() >= timeout {
                return Err(Error::WaitTimeout {
                    what: "waiting for the VM lock to clear",
                    target: Target::vm(node, vmid),
                    after: timeout,
                    last: Some(format!("lock: {lock}")),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_like() -> CreateVm {
        CreateVm {
            vmid: 9000,
            name: Some("debian-12".into()),
            cores: Some(1),
            memory_mib: Some(1024),
            scsihw: Some("virtio-scsi-single".into()),
            disks: vec![
                (
                    "scsi0".into(),
                    NewDisk::Import {
                        storage: "local-lvm".into(),
                        source: "local:import/debian.qcow2".into(),
                    },
                ),
                (
                    "ide2".into(),
                    NewDisk::CloudInit {
                        storage: "local-lvm".into(),
                    },
                ),
            ],
            nets: vec![(0, NetDevice::virtio("vmbr0"))],
            serial_sockets: vec![0],
            vga: Some("serial0".into()),
            agent: Some(AgentOption {
                enabled: true,
                fstrim_cloned_disks: None,
            }),
            boot_order: vec!["scsi0".into()],
            tags: vec!["kiln".into(), "kiln-template".into()],
            ..CreateVm::default()
        }
    }

    #[test]
    fn create_renders_the_schema_keys() {
        let params = template_like().params().unwrap();
        assert_eq!(params.get("vmid"), Some("9000"));
        assert_eq!(
            params.get("scsi0"),
            Some("local-lvm:0,import-from=local:import/debian.qcow2")
        );
        assert_eq!(params.get("ide2"), Some("local-lvm:cloudinit"));
        assert_eq!(params.get("serial0"), Some("socket"));
        assert_eq!(params.get("vga"), Some("serial0"));
        assert_eq!(params.get("boot"), Some("order=scsi0"));
        assert_eq!(params.get("agent"), Some("1"));
        assert_eq!(params.get("net0"), Some("virtio,bridge=vmbr0"));
        assert_eq!(params.get("tags"), Some("kiln;kiln-template"));
        assert!(!params.contains("delete"));
    }

    #[test]
    fn create_refuses_what_the_schema_refuses() {
        let bad = [
            CreateVm {
                vmid: 99,
                ..template_like()
            },
            CreateVm {
                vga: Some("serial7".into()),
                ..template_like()
            },
            CreateVm {
                serial_sockets: vec![4],
                ..template_like()
            },
            CreateVm {
                name: Some("bad_name".into()),
                ..template_like()
            },
            CreateVm {
                disks: vec![(
                    "scsi31".into(),
                    NewDisk::CloudInit {
                        storage: "local-lvm".into(),
                    },
                )],
                ..template_like()
            },
        ];
        for vm in bad {
            assert!(vm.params().is_err(), "{vm:?}");
        }
    }
}
