//! Cluster-wide reads: version, nextid, resources, nodes, and a node's VM list.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::state::{STORAGES, State, Vm};
use super::{Ctx, Out, vm};
use crate::api::reply::ApiError;

/// The PVE release the schema describes.
pub(crate) fn version() -> Result<Out, ApiError> {
    Ok(
        json!({"version": "9.1.1", "release": "9.1", "repoid": "kiln-lab", "console": "xtermjs"})
            .into(),
    )
}

/// `GET /cluster/nextid`: a string, like PVE; with `vmid`, that id if free, else a 400.
pub(crate) fn nextid(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    if let Some(vmid) = ctx.opt("vmid") {
        let id: u32 = vmid.parse().unwrap_or_default();
        if state.vms.contains_key(&id) {
            return Err(ApiError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(id.to_string()).into());
    }
    let free = (100u32..)
        .find(|id| !state.vms.contains_key(id))
        .unwrap_or(100);
    Ok(json!(free.to_string()).into())
}

/// Volume sizes by (node, volid), built once per request so that listing thousands of VMs
/// stays linear.
pub(crate) type Sizes<'a> = HashMap<(&'a str, &'a str), u64>;

pub(crate) fn sizes(state: &State) -> Sizes<'_> {
    state
        .volumes
        .iter()
        .map(|v| ((v.node.as_str(), v.volid.as_str()), v.size))
        .collect()
}

fn maxdisk(sizes: &Sizes<'_>, vm: &Vm) -> u64 {
    vm.config
        .iter()
        .filter(|(k, v)| vm::is_disk_key(k) && !vm::is_cdrom(v))
        .filter_map(|(_, v)| sizes.get(&(vm.node.as_str(), vm::volid_of(v))))
        .sum()
}

fn maxmem(vm: &Vm) -> u64 {
    let mib = vm
        .config
        .get("memory")
        .map(|m| vm::parse_kv(m))
        .and_then(|kv| kv.get("current").or_else(|| kv.get("")).cloned())
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(512);
    mib << 20
}

pub(crate) fn cpus(vm: &Vm) -> u64 {
    let get = |k: &str, d: u64| vm.config.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    get("sockets", 1) * get("cores", 1)
}

/// The fields `cluster/resources` and the node VM list share.
pub(crate) fn vm_summary(sizes: &Sizes<'_>, vm: &Vm) -> Value {
    let uptime = vm.started_at.map_or(0, |t| t.elapsed().as_secs());
    let mut out = json!({
        "vmid": vm.vmid,
        "name": vm.name(),
        "status": if vm.running { "running" } else { "stopped" },
        "template": u8::from(vm.is_template()),
        "maxmem": maxmem(vm),
        "mem": if vm.running { maxmem(vm) / 4 } else { 0 },
        "maxdisk": maxdisk(sizes, vm),
        "disk": 0,
        "maxcpu": cpus(vm),
        "cpu": 0,
        "uptime": uptime,
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
    });
    if let Some(tags) = vm.config.get("tags") {
        out["tags"] = json!(tags);
    }
    if let Some(lock) = vm.lock() {
        out["lock"] = json!(lock);
    }
    if let Some(pid) = vm.pid.filter(|_| vm.running) {
        out["pid"] = json!(pid);
    }
    out
}

/// `GET /cluster/resources[?type=vm|node|storage|sdn]`.
pub(crate) fn resources(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let kind = ctx.opt("type");
    let sizes = sizes(&state);
    let mut out = Vec::new();
    if kind.is_none_or(|k| k == "vm") {
        for vm in state.vms.values() {
            let mut entry = vm_summary(&sizes, vm);
            entry["id"] = json!(format!("qemu/{}", vm.vmid));
            entry["type"] = json!("qemu");
            entry["node"] = json!(vm.node);
            out.push(entry);
        }
    }
    if kind.is_none_or(|k| k == "node") {
        for node in &ctx.cluster.nodes {
            out.push(node_entry(node, "node"));
        }
    }
    if kind.is_none_or(|k| k == "storage") {
        for node in &ctx.cluster.nodes {
            for storage in STORAGES {
                let used = used_bytes(&state, node, storage.id);
                out.push(json!({
                    "id": format!("storage/{node}/{}", storage.id),
                    "type": "storage",
                    "node": node,
                    "storage": storage.id,
                    "plugintype": storage.kind,
                    "content": storage.content.join(","),
                    "shared": 0,
                    "status": "available",
                    "disk": used,
                    "maxdisk": storage.total,
                }));
            }
        }
    }
    Ok(Value::Array(out).into())
}

pub(crate) fn used_bytes(state: &State, node: &str, storage: &str) -> u64 {
    state
        .volumes
        .iter()
        .filter(|v| v.node == node && v.storage == storage)
        .map(|v| v.size)
        .sum()
}

fn node_entry(node: &str, kind: &str) -> Value {
    json!({
        "id": format!("node/{node}"),
        "type": kind,
        "node": node,
        "status": "online",
        "level": "",
        "maxcpu": 8,
        "cpu": 0.01,
        "maxmem": 64u64 << 30,
        "mem": 4u64 << 30,
        "maxdisk": 100u64 << 30,
        "disk": 10u64 << 30,
        "uptime": 86400,
    })
}

/// `GET /nodes`.
pub(crate) fn nodes(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let list: Vec<Value> = ctx
        .cluster
        .nodes
        .iter()
        .map(|n| node_entry(n, "node"))
        .collect();
    Ok(Value::Array(list).into())
}

/// `GET /nodes/{node}/qemu`.
pub(crate) fn qemu_list(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let sizes = sizes(&state);
    let list: Vec<Value> = state
        .vms
        .values()
        .filter(|vm| vm.node == ctx.node())
        .map(|vm| {
            let mut entry = vm_summary(&sizes, vm);
            entry["cpus"] = entry["maxcpu"].clone();
            entry
        })
        .collect();
    Ok(Value::Array(list).into())
}
