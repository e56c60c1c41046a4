//! Create (`POST /nodes/{node}/qemu`), destroy (`DELETE .../{vmid}`) and template.

use std::collections::BTreeMap;

use serde_json::json;

use super::state::Vm;
use super::{Ctx, Out, check_unlocked, config, disks, no_such_pool, power, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::VolumeOp;

/// `POST /nodes/{node}/qemu`: a `qmcreate` task; disks may import (`import-from`).
pub(crate) fn create(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vmid: u32 = ctx.param("vmid").parse().unwrap_or_default();
    if let Some(existing) = state.vms.get(&vmid) {
        return Err(ApiError::fail(format!(
            "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
            existing.node
        )));
    }
    if let Some(pool) = ctx.opt("pool") {
        return Err(no_such_pool(pool));
    }
    let node = ctx.node().to_string();
    // The VMID is taken from here on (PVE writes the config first, under `lock: create`).
    state.vms.insert(
        vmid,
        Vm::new(
            vmid,
            &node,
            BTreeMap::from([("lock".to_string(), "create".to_string())]),
        ),
    );
    let params = ctx.params.clone();
    let injected = ctx.injected(vmid, "local-lvm");
    let start = ctx.flag("start").unwrap_or(false);
    let upid = ctx.cluster.spawn_task(
        &mut state,
        ctx.node(),
        "qmcreate",
        &vmid.to_string(),
        ctx.caller,
        ctx.task_duration(),
        injected,
        move |cluster, injected| async move {
            let mut ops = Vec::new();
            let mut log = {
                let mut state = cluster.lock();
                if let Some(message) = injected {
                    state.vms.remove(&vmid);
                    return Err(format!("unable to create VM {vmid} - {message}"));
                }
                if let Some(vm) = state.vms.get_mut(&vmid) {
                    vm.config.remove("lock");
                }
                let mut settings = params;
                for key in ["start", "unique", "pool", "storage", "archive"] {
                    settings.remove(key);
                }
                match config::apply(&mut state, &node, vmid, &settings, &mut ops) {
                    Ok(log) => log,
                    Err(e) => {
                        state.vms.remove(&vmid);
                        state.volumes.retain(|v| v.vmid != Some(vmid));
                        return Err(format!("unable to create VM {vmid} - {}", e.message()));
                    }
                }
            };
            let made: Vec<String> = ops.iter().filter_map(made_volume).collect();
            match disks::run_ops(&cluster, &node, ops).await {
                Ok(lines) => log.extend(lines),
                Err(message) => {
                    {
                        let mut state = cluster.lock();
                        state.vms.remove(&vmid);
                        state.volumes.retain(|v| v.vmid != Some(vmid));
                    }
                    disks::discard(&cluster, &node, made).await;
                    return Err(format!("unable to create VM {vmid} - {message}"));
                }
            }
            if start {
                log.extend(power::boot(&cluster, vmid).await?);
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// `DELETE /nodes/{node}/qemu/{vmid}`: a `qmdestroy` task.
pub(crate) fn destroy(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let vmid = vm.vmid;
    check_unlocked(vm)?;
    if vm.running {
        return Err(ApiError::fail(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    if vm.config.get("protection").is_some_and(|p| vm::is_true(p)) {
        return Err(ApiError::fail(format!(
            "can't remove VM {vmid} - protection mode enabled"
        )));
    }
    let unreferenced = ctx.flag("destroy-unreferenced-disks").unwrap_or(false);
    let node = ctx.node().to_string();
    let upid = ctx.spawn_vm_task(
        &mut state,
        "qmdestroy",
        vmid,
        "local-lvm",
        move |cluster| async move {
            let mut ops = Vec::new();
            let mut log = {
                let mut state = cluster.lock();
                // A base volume with linked clones stays (pve-storage `vdisk_free`).
                let in_use = state.volumes.iter().find_map(|v| {
                    let parent = v.parent.as_deref()?;
                    let parent_vmid = state.volume(&v.node, parent).and_then(|p| p.vmid);
                    (parent_vmid == Some(vmid) && v.vmid != Some(vmid)).then(|| parent.to_string())
                });
                if let Some(base) = in_use {
                    let name = base.split_once(':').map_or(base.as_str(), |(_, n)| n);
                    return Err(format!(
                        "base volume '{name}' is still in use by linked cloned"
                    ));
                }
                let Some(vm) = state.vms.remove(&vmid) else {
                    return Err(format!("VM {vmid} does not exist"));
                };
                let referenced: Vec<String> = vm
                    .config
                    .iter()
                    .filter(|(k, _)| vm::is_disk_key(k) || k.starts_with("unused"))
                    .map(|(_, v)| vm::volid_of(v).to_string())
                    .collect();
                let mut log = Vec::new();
                state.volumes.retain(|v| {
                    let owned = v.node == vm.node && v.vmid == Some(vmid);
                    let remove = owned && (referenced.contains(&v.volid) || unreferenced);
                    if remove {
                        log.push(format!(
                            "  Logical volume \"{}\" successfully removed.",
                            v.volid
                        ));
                        ops.push(VolumeOp::Remove {
                            volid: v.volid.clone(),
                        });
                    }
                    !remove
                });
                log
            };
            log.extend(disks::run_ops(&cluster, &node, ops).await?);
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// `POST .../template`: a `qmtemplate` task; disks become `base-N-disk-K`.
pub(crate) fn template(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let vmid = vm.vmid;
    check_unlocked(vm)?;
    if vm.is_template() {
        return Err(ApiError::fail("you can't convert a template to a template"));
    }
    if vm.running {
        return Err(ApiError::fail(
            "you can't convert a VM to template if VM is running",
        ));
    }
    let upid = ctx.spawn_vm_task(
        &mut state,
        "qmtemplate",
        vmid,
        "local-lvm",
        move |cluster| async move {
            let Some(vm) = cluster.lock().vms.get(&vmid).cloned() else {
                return Err(format!("VM {vmid} does not exist"));
            };
            let renames: Vec<VolumeOp> = vm
                .config
                .iter()
                .filter(|(key, value)| vm::is_disk_key(key) && !vm::is_cdrom(value))
                .map(|(_, value)| vm::volid_of(value).to_string())
                .filter_map(|old| {
                    let new = base_name(vmid, &old);
                    (new != old).then_some(VolumeOp::Rename { from: old, to: new })
                })
                .collect();
            let mut log = disks::run_ops(&cluster, &vm.node, renames).await?;
            let mut state = cluster.lock();
            let mut config = vm.config.clone();
            for (key, value) in &vm.config {
                if !vm::is_disk_key(key) || vm::is_cdrom(value) {
                    continue;
                }
                let old = vm::volid_of(value).to_string();
                let new = base_name(vmid, &old);
                if new == old {
                    continue;
                }
                if let Some(volume) = state
                    .volumes
                    .iter_mut()
                    .find(|v| v.node == vm.node && v.volid == old)
                {
                    volume.volid = new.clone();
                }
                config.insert(key.clone(), value.replacen(&old, &new, 1));
                log.push(format!("  Renamed \"{old}\" to \"{new}\""));
            }
            config.insert("template".into(), "1".into());
            if let Some(vm) = state.vms.get_mut(&vmid) {
                vm.config = config;
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// `local-lvm:vm-N-disk-K` → `local-lvm:base-N-disk-K`.
fn base_name(vmid: u32, volid: &str) -> String {
    volid.replacen(&format!("vm-{vmid}-"), &format!("base-{vmid}-"), 1)
}

/// The volume a create operation makes (to remove it if the task fails later).
fn made_volume(op: &VolumeOp) -> Option<String> {
    match op {
        VolumeOp::Create { volid, .. } | VolumeOp::Import { volid, .. } => Some(volid.clone()),
        _ => None,
    }
}
