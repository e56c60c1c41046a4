//! `status/start|stop|shutdown|reboot` (tasks) and `status/current`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::cluster::{cpus, sizes, vm_summary};
use super::state::Vm;
use super::{Cluster, Ctx, Out, check_unlocked, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::{GuestDisk, GuestNic, GuestSpec};
use crate::cloudinit;

/// Regenerates the NoCloud seed (as qemu-server does at every start) and boots the guest.
pub(crate) async fn boot(cluster: &Arc<Cluster>, vmid: u32) -> Result<Vec<String>, String> {
    let spec = {
        let mut state = cluster.lock();
        let snippets = state.snippets.clone();
        let vm = state
            .vms
            .get_mut(&vmid)
            .ok_or_else(|| format!("VM {vmid} does not exist"))?;
        vm.apply_pending();
        let seed = cloudinit::render(vmid, &vm.config, &|volid| snippets.get(volid).cloned())?;
        guest_spec(vm, seed)
    };
    let seed = spec.nocloud.clone();
    cluster.backend.power_on(spec).await?;
    let mut state = cluster.lock();
    let pid = state.pid();
    if let Some(vm) = state.vms.get_mut(&vmid) {
        vm.running = true;
        vm.pid = Some(pid);
        vm.started_at = Some(Instant::now());
        vm.seed = Some(seed);
    }
    Ok(vec![format!("generating cloud-init ISO for VM {vmid}")])
}

fn guest_spec(vm: &Vm, nocloud: cloudinit::NoCloud) -> GuestSpec {
    let mut nics = Vec::new();
    for index in 0..32 {
        let Some(net) = vm.config.get(&format!("net{index}")) else {
            continue;
        };
        let ipconfig = vm::parse_kv(
            vm.config
                .get(&format!("ipconfig{index}"))
                .map_or("", String::as_str),
        );
        let static_ip = |key: &str| ipconfig.get(key).filter(|v| v.contains('/')).cloned();
        let net_kv = vm::parse_kv(net);
        nics.push(GuestNic {
            name: format!("eth{index}"),
            mac: vm::mac_of(net).unwrap_or_default().to_lowercase(),
            model: vm::nic_model(net),
            bridge: net_kv.get("bridge").cloned(),
            ipv4: static_ip("ip"),
            ipv6: static_ip("ip6"),
        });
    }
    let boot_order: Vec<String> = vm
        .config
        .get("boot")
        .and_then(|b| vm::parse_kv(b).get("order").cloned())
        .map(|order| order.split(';').map(str::to_string).collect())
        .unwrap_or_default();
    let disks = vm
        .config
        .iter()
        .filter(|(key, value)| vm::is_disk_key(key) && value.contains(':'))
        .map(|(key, value)| GuestDisk {
            key: key.clone(),
            volid: vm::volid_of(value).to_string(),
            cdrom: vm::is_cdrom(value),
            cloudinit: vm::volid_of(value).ends_with("-cloudinit"),
            boot_index: boot_order
                .iter()
                .position(|k| k == key)
                .and_then(|i| u32::try_from(i).ok()),
        })
        .collect();
    let number = |key: &str, default: u64| {
        vm.config
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let name = vm.name();
    GuestSpec {
        vmid: vm.vmid,
        node: vm.node.clone(),
        name: name.clone(),
        memory_mib: number("memory", 512),
        sockets: u32::try_from(number("sockets", 1)).unwrap_or(1),
        cores: u32::try_from(number("cores", 1)).unwrap_or(1),
        agent: vm::agent_enabled(&vm.config),
        disks,
        nics,
        nocloud,
        host_key: kiln_lab_core::ed25519_public_key(
            format!("kiln-lab host key {} {name}", vm.vmid).as_bytes(),
            &format!("root@{name}"),
        ),
    }
}

/// `POST .../status/start`: a `qmstart` task.
pub(crate) fn start(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let vmid = vm.vmid;
    check_unlocked(vm)?;
    if vm.is_template() {
        return Err(ApiError::fail("you can't start a vm if it's a template"));
    }
    let upid = ctx.spawn_vm_task(
        &mut state,
        "qmstart",
        vmid,
        "local-lvm",
        move |cluster| async move {
            let running = cluster.lock().vms.get(&vmid).is_some_and(|vm| vm.running);
            if running {
                return Err(format!("VM {vmid} already running"));
            }
            boot(&cluster, vmid).await
        },
    );
    Ok(json!(upid).into())
}

/// How long a shutdown waits for the guest before powering it off when the request gives
/// no `timeout`.
const SHUTDOWN_TIMEOUT_SECS: u64 = 180;

/// `POST .../status/stop` (`qmstop`) and `.../status/shutdown` (`qmshutdown`).
pub(crate) fn stop(ctx: &Ctx<'_>, kind: &'static str) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let vmid = vm.vmid;
    if kind == "qmshutdown" {
        check_unlocked(vm)?;
    }
    let injected = ctx.injected(vmid, "local-lvm");
    let timeout = Duration::from_secs(
        ctx.opt("timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(SHUTDOWN_TIMEOUT_SECS),
    );
    let upid = ctx.cluster.spawn_task(
        &mut state,
        ctx.node(),
        kind,
        &vmid.to_string(),
        ctx.caller,
        ctx.task_duration(),
        injected,
        move |cluster, injected| async move {
            if let Some(message) = injected {
                return Err(message);
            }
            let running = cluster.lock().vms.get(&vmid).is_some_and(|vm| vm.running);
            if !running {
                return if kind == "qmshutdown" {
                    Err(format!("VM {vmid} not running"))
                } else {
                    Ok(vec![format!("VM {vmid} is already stopped")])
                };
            }
            if kind == "qmshutdown" {
                cluster.backend.shutdown(vmid, timeout).await;
            } else {
                cluster.backend.power_off(vmid).await;
            }
            if let Some(vm) = cluster.lock().vms.get_mut(&vmid) {
                vm.running = false;
                vm.pid = None;
                vm.started_at = None;
            }
            Ok(Vec::new())
        },
    );
    Ok(json!(upid).into())
}

/// `POST .../status/reboot`: a `qmreboot` task; the seed is regenerated and the boot delay
/// starts again.
pub(crate) fn reboot(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let vmid = vm.vmid;
    check_unlocked(vm)?;
    if !vm.running {
        return Err(ApiError::fail(format!("VM {vmid} not running")));
    }
    let upid = ctx.spawn_vm_task(
        &mut state,
        "qmreboot",
        vmid,
        "local-lvm",
        move |cluster| async move {
            cluster.backend.power_off(vmid).await;
            boot(&cluster, vmid).await
        },
    );
    Ok(json!(upid).into())
}

/// `GET .../status/current`.
pub(crate) fn current(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let mut out = vm_summary(&sizes(&state), vm);
    let status = if vm.running { "running" } else { "stopped" };
    out["qmpstatus"] = json!(status);
    out["cpus"] = json!(cpus(vm));
    out["agent"] = json!(i64::from(vm::agent_enabled(&vm.config)));
    out["ha"] = json!({"managed": 0});
    if vm.running {
        out["running-qemu"] = json!("10.1.2");
        out["running-machine"] = json!("pc-i440fx-10.1+pve0");
    }
    if out.get("template") == Some(&json!(0))
        && let Some(map) = out.as_object_mut()
    {
        map.remove("template");
    }
    Ok(out.into())
}
