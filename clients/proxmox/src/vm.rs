//! A VM's life after it exists: config, cloud-init, resize, power, status,
//! delete, template, and waiting for locks.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use backon::Retryable;
use regex::Regex;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::config::{VmConfig, VmConfigUpdate};
use crate::de;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::task::{TaskHandle, TaskOutcome};
use crate::wire::{Body, endpoint, seg};

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

pub(crate) static DISK_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
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
