//! Disks: allocation of new volumes (`STORAGE:SIZE`, `import-from`, `STORAGE:cloudinit`)
//! and `PUT .../resize` (grow only, `+NG` or absolute).

use serde_json::json;

use super::state::{State, Volume, now_secs, storage};
use super::{Cluster, Ctx, Out, check_unlocked, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::VolumeOp;

const CLOUDINIT_SIZE: u64 = 4 << 20;

/// Turns a requested disk value into the stored one, allocating volumes as PVE does; the
/// files to make are added to `ops` (run by the task once the state is unlocked).
pub(crate) fn allocate(
    state: &mut State,
    node: &str,
    vmid: u32,
    value: &str,
    ops: &mut Vec<VolumeOp>,
) -> Result<String, String> {
    let mut parts = value.split(',');
    let first = parts.next().unwrap_or_default();
    let options: Vec<&str> = parts.collect();
    if matches!(first, "none" | "cdrom") || first.starts_with('/') {
        return Ok(value.to_string());
    }
    let Some((store, rest)) = first.split_once(':') else {
        return Err(format!("unable to parse volume ID '{first}'"));
    };
    if rest == "cloudinit" {
        check_images(store)?;
        let volid = format!("{store}:vm-{vmid}-cloudinit");
        state.add_volume(new_volume(
            node,
            store,
            &volid,
            "raw",
            CLOUDINIT_SIZE,
            vmid,
            None,
        ));
        let mut out = vec![volid];
        out.extend(
            options
                .iter()
                .filter(|o| !o.starts_with("media="))
                .map(|o| o.to_string()),
        );
        out.push("media=cdrom".to_string());
        return Ok(out.join(","));
    }
    if let Ok(gib) = rest.parse::<f64>() {
        check_images(store)?;
        let import = options.iter().find_map(|o| o.strip_prefix("import-from="));
        let size = match import {
            Some(source) => {
                state
                    .volume(node, source)
                    .ok_or_else(|| format!("volume '{source}' does not exist"))?
                    .size
            }
            None => (gib * f64::from(1u32 << 30)) as u64,
        };
        let name = state.next_disk_name(node, store, vmid);
        let volid = format!("{store}:{name}");
        state.add_volume(new_volume(node, store, &volid, "raw", size, vmid, None));
        ops.push(match import {
            Some(source) => VolumeOp::Import {
                source: source.to_string(),
                volid: volid.clone(),
            },
            None => VolumeOp::Create {
                volid: volid.clone(),
                size,
            },
        });
        let mut out = vec![volid];
        out.extend(
            options
                .iter()
                .filter(|o| !o.starts_with("import-from=") && !o.starts_with("size="))
                .map(|o| o.to_string()),
        );
        out.push(format!("size={}", vm::format_size(size)));
        return Ok(out.join(","));
    }
    if storage(store).is_some() && state.volume(node, first).is_none() {
        return Err(format!("volume '{first}' does not exist"));
    }
    Ok(value.to_string())
}

fn check_images(store: &str) -> Result<(), String> {
    match storage(store) {
        None => Err(format!("storage '{store}' does not exist")),
        Some(def) if !def.content.contains(&"images") => Err(format!(
            "storage '{store}' does not support content-type 'images'"
        )),
        Some(_) => Ok(()),
    }
}

pub(crate) fn new_volume(
    node: &str,
    store: &str,
    volid: &str,
    format: &str,
    size: u64,
    vmid: u32,
    parent: Option<String>,
) -> Volume {
    Volume {
        node: node.to_string(),
        storage: store.to_string(),
        volid: volid.to_string(),
        content: "images".to_string(),
        format: format.to_string(),
        size,
        vmid: Some(vmid),
        parent,
        ctime: now_secs(),
    }
}

/// Runs volume operations in order (the state must not be locked) and returns their log.
/// A size the store reports (an imported image's virtual size) replaces the volume's size
/// and the `size=` of the disk values that use it.
pub(crate) async fn run_ops(
    cluster: &Cluster,
    node: &str,
    ops: Vec<VolumeOp>,
) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    for op in ops {
        let target = match &op {
            VolumeOp::Import { volid, .. } => Some(volid.clone()),
            _ => None,
        };
        let done = cluster.volumes.run(node, op).await?;
        log.extend(done.log);
        if let (Some(size), Some(volid)) = (done.size, target) {
            record_size(&mut cluster.lock(), node, &volid, size);
        }
    }
    Ok(log)
}

fn record_size(state: &mut State, node: &str, volid: &str, size: u64) {
    if let Some(volume) = state
        .volumes
        .iter_mut()
        .find(|v| v.node == node && v.volid == volid)
    {
        volume.size = size;
    }
    for vm in state.vms.values_mut().filter(|vm| vm.node == node) {
        for value in vm.config.values_mut() {
            if vm::volid_of(value) == volid {
                *value = vm::with_size(value, size);
            }
        }
    }
}

/// Removes the files of volumes a failed task had begun to make; errors are ignored (the
/// task reports its own).
pub(crate) async fn discard(cluster: &Cluster, node: &str, volids: Vec<String>) {
    for volid in volids {
        let _ = cluster.volumes.run(node, VolumeOp::Remove { volid }).await;
    }
}

/// `PUT /nodes/{node}/qemu/{vmid}/resize`: a `resize` task since PVE 8.0.
pub(crate) fn resize(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    check_unlocked(vm)?;
    let disk = ctx.param("disk").to_string();
    let value = vm
        .config
        .get(&disk)
        .cloned()
        .ok_or_else(|| ApiError::fail(format!("disk '{disk}' does not exist")))?;
    if vm::is_cdrom(&value) {
        return Err(ApiError::fail("you can't resize a cdrom"));
    }
    let volid = vm::volid_of(&value).to_string();
    let current = state
        .volume(ctx.node(), &volid)
        .map(|v| v.size)
        .ok_or_else(|| ApiError::fail(format!("volume '{volid}' does not exist")))?;
    let size_text = ctx.param("size");
    let (grow, amount) = match size_text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, size_text),
    };
    let amount =
        vm::parse_size(amount).ok_or_else(|| ApiError::param("size", "unable to parse size"))?;
    let new_size = if grow { current + amount } else { amount };
    if new_size < current {
        return Err(ApiError::fail("shrinking disks is not supported"));
    }
    let (node, vmid) = (ctx.node().to_string(), ctx.vmid());
    let storage = volid.split(':').next().unwrap_or_default().to_owned();
    let upid = ctx.spawn_vm_task(
        &mut state,
        "resize",
        vmid,
        &storage,
        move |cluster| async move {
            let running = cluster.lock().vms.get(&vmid).is_some_and(|vm| vm.running);
            if running {
                cluster
                    .backend
                    .resize_running(vmid, &disk, new_size)
                    .await?;
            } else {
                let op = VolumeOp::Resize {
                    volid: volid.clone(),
                    size: new_size,
                };
                run_ops(&cluster, &node, vec![op]).await?;
            }
            let mut state = cluster.lock();
            if let Some(volume) = state
                .volumes
                .iter_mut()
                .find(|v| v.node == node && v.volid == volid)
            {
                volume.size = new_size;
            }
            if let Some(vm) = state.vms.get_mut(&vmid)
                && let Some(value) = vm.config.get(&disk).cloned()
            {
                vm.config
                    .insert(disk.clone(), vm::with_size(&value, new_size));
            }
            Ok(vec![format!(
                "  Size of logical volume {volid} changed to {}.",
                vm::format_size(new_size)
            )])
        },
    );
    Ok(json!(upid).into())
}
