//! New VMs from templates: VMID allocation that cannot race, and clones that
//! pick a fresh id when PVE says `already exists`.

use reqwest::Method;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::de;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::task::{TaskHandle, TaskOutcome};
use crate::vm::vm_path;
use crate::vmids::VmidReservation;
use crate::wire::endpoint;

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

impl ProxmoxClient {
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
}
