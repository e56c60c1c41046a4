//! `POST .../clone` like qemu-server's `clone_vm`: early checks answered at once, then a
//! `qmclone` task during which the new VM exists with `lock: clone`.

use std::collections::BTreeMap;

use serde_json::json;

use super::disks::{self, new_volume};
use super::state::{Vm, storage};
use super::{Ctx, Out, check_unlocked, no_such_pool, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::VolumeOp;

pub(crate) fn clone(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let source = vm_of(&state, ctx)?.clone();
    let node = ctx.node().to_string();
    let newid: u32 = ctx.param("newid").parse().unwrap_or_default();
    let template = source.is_template();
    let full = ctx.flag("full").unwrap_or(!template);
    if !full && !template {
        return Err(ApiError::fail(
            "Linked clone feature is not supported for VM (not a template)",
        ));
    }
    if !full {
        for key in ["storage", "format"] {
            if ctx.opt(key).is_some() {
                return Err(ApiError::param(
                    key,
                    format!("parameter '{key}' not allowed for linked clones"),
                ));
            }
        }
    }
    if let Some(target) = ctx.opt("target")
        && target != node
    {
        if !ctx.cluster.nodes.iter().any(|n| n == target) {
            return Err(ApiError::fail(format!("no such cluster node '{target}'")));
        }
        return Err(ApiError::fail(format!(
            "can't clone VM to node '{target}' (VM uses local storage)"
        )));
    }
    if let Some(target_storage) = ctx.opt("storage") {
        match storage(target_storage) {
            None => {
                return Err(ApiError::fail(format!(
                    "storage '{target_storage}' does not exist"
                )));
            }
            Some(def) if !def.content.contains(&"images") => {
                return Err(ApiError::fail(format!(
                    "storage '{target_storage}' does not support vm images"
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(pool) = ctx.opt("pool") {
        return Err(no_such_pool(pool));
    }
    check_unlocked(&source)?;
    if state.vms.contains_key(&newid) {
        return Err(ApiError::fail(format!(
            "unable to create VM {newid}: config file already exists"
        )));
    }
    // From here the new VMID exists cluster-wide, locked, until the task ends.
    state.vms.insert(
        newid,
        Vm::new(
            newid,
            &node,
            BTreeMap::from([("lock".to_string(), "clone".to_string())]),
        ),
    );
    let name = ctx.opt("name").map(str::to_string);
    let description = ctx.opt("description").map(str::to_string);
    let target_storage = ctx.opt("storage").map(str::to_string);
    let format = ctx.opt("format").unwrap_or("raw").to_string();
    let srcid = source.vmid;
    let injected = ctx.injected(newid, target_storage.as_deref().unwrap_or("local-lvm"));
    let upid = ctx.cluster.spawn_task(
        &mut state,
        ctx.node(),
        "qmclone",
        &srcid.to_string(),
        ctx.caller,
        ctx.task_duration(),
        injected,
        move |cluster, injected| async move {
            let store = target_storage
                .clone()
                .unwrap_or_else(|| "local-lvm".to_string());
            let locked = match injected {
                Some(message) => Err(message),
                None => cluster.hold_storage_lock(&node, &store).await,
            };
            let mut ops = Vec::new();
            let (config, log) = {
                let mut state = cluster.lock();
                if let Err(message) = locked {
                    state.vms.remove(&newid);
                    return Err(format!("clone failed: {message}"));
                }
                let Some(source) = state.vms.get(&srcid).cloned() else {
                    state.vms.remove(&newid);
                    return Err(format!("clone failed: VM {srcid} does not exist"));
                };
                let mut log = vec![format!(
                    "create {} clone of drive(s) of VM {srcid}",
                    if full { "full" } else { "linked" }
                )];
                let mut config = BTreeMap::new();
                for (key, value) in &source.config {
                    if key.starts_with("unused")
                        || matches!(key.as_str(), "template" | "lock" | "parent" | "snapstate")
                    {
                        continue;
                    }
                    let value = if key.starts_with("net") && vm::mac_of(value).is_some() {
                        let mac = state.random_mac();
                        vm::with_mac(value, &mac)
                    } else if vm::is_disk_key(key)
                        && !value.starts_with("none")
                        && value.contains(':')
                        && !vm::volid_of(value).starts_with('/')
                    {
                        let old = vm::volid_of(value).to_string();
                        let Some(volume) = state.volume(&node, &old).cloned() else {
                            config.insert(key.clone(), value.clone());
                            continue;
                        };
                        let cloudinit = old.ends_with("-cloudinit");
                        let store = match (&target_storage, cloudinit || full) {
                            (Some(target), true) => target.clone(),
                            _ => volume.storage.clone(),
                        };
                        let (new, parent) = if cloudinit {
                            (format!("{store}:vm-{newid}-cloudinit"), None)
                        } else if full {
                            (
                                format!("{store}:{}", state.next_disk_name(&node, &store, newid)),
                                None,
                            )
                        } else {
                            let base = old.split_once(':').map_or(old.as_str(), |(_, n)| n);
                            let disk = state.next_disk_name(&node, &store, newid);
                            (format!("{store}:{base}/{disk}"), Some(old.clone()))
                        };
                        log.push(format!("drive {key}: clone {old} -> {new}"));
                        if !cloudinit {
                            ops.push(if full {
                                VolumeOp::FullClone {
                                    source: old.clone(),
                                    volid: new.clone(),
                                }
                            } else {
                                VolumeOp::LinkedClone {
                                    base: old.clone(),
                                    volid: new.clone(),
                                }
                            });
                        }
                        let fmt = if full { format.as_str() } else { "raw" };
                        state.add_volume(new_volume(
                            &node,
                            &store,
                            &new,
                            fmt,
                            volume.size,
                            newid,
                            parent,
                        ));
                        value.replacen(&old, &new, 1)
                    } else {
                        value.clone()
                    };
                    config.insert(key.clone(), value);
                }
                let name = name.unwrap_or_else(|| format!("Copy-of-VM-{}", source.name()));
                config.insert("name".into(), name);
                if let Some(description) = description {
                    config.insert("description".into(), description);
                }
                (config, log)
            };
            let made: Vec<String> = ops
                .iter()
                .filter_map(|op| match op {
                    VolumeOp::FullClone { volid, .. } | VolumeOp::LinkedClone { volid, .. } => {
                        Some(volid.clone())
                    }
                    _ => None,
                })
                .collect();
            let mut log = log;
            match disks::run_ops(&cluster, &node, ops).await {
                Ok(lines) => log.extend(lines),
                Err(message) => {
                    {
                        let mut state = cluster.lock();
                        state.vms.remove(&newid);
                        state.volumes.retain(|v| v.vmid != Some(newid));
                    }
                    disks::discard(&cluster, &node, made).await;
                    return Err(format!("clone failed: {message}"));
                }
            }
            if let Some(vm) = cluster.lock().vms.get_mut(&newid) {
                vm.config = config;
            }
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}
