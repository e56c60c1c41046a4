//! `GET`/`POST` (async)/`PUT` (sync) `.../config` and `GET .../cloudinit/dump`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use super::state::State;
use super::{Ctx, Out, check_unlocked, disks, no_such_vm, vm, vm_of};
use crate::api::reply::ApiError;
use crate::backend::VolumeOp;
use crate::cloudinit::{self, Part};

/// Parameters of the config calls that are not config keys.
const NOT_CONFIG: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "background_delay",
    "force",
    "import-working-storage",
];

/// SHA-1 of the config file text, as PVE's `digest`.
pub(crate) fn digest(config: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha1::new();
    for (k, v) in config {
        hasher.update(format!("{k}: {v}\n").as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Applies config parameters to a VM, like qemu-server's `update_vm_api`. Returns the log;
/// the disk files to make are added to `ops`.
pub(crate) fn apply(
    state: &mut State,
    node: &str,
    vmid: u32,
    params: &BTreeMap<String, String>,
    ops: &mut Vec<VolumeOp>,
) -> Result<Vec<String>, ApiError> {
    let vm = state
        .vms
        .get(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| no_such_vm(node, vmid))?;
    check_unlocked(vm)?;
    if let Some(expected) = params.get("digest")
        && *expected != digest(&vm.config)
    {
        return Err(ApiError::fail(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let running = vm.running;
    let mut config = vm.config.clone();
    let mut pending = vm.pending.clone();
    let mut log = Vec::new();
    let mut changes = Vec::new();
    for (key, value) in params {
        if NOT_CONFIG.contains(&key.as_str()) {
            continue;
        }
        let stored = if key == "sshkeys" {
            crate::sshkeys::decode_sshkeys(value).map_err(ApiError::fail)?;
            value.clone()
        } else if key == "tags" {
            vm::normalize_tags(value)
        } else if key.starts_with("net") && vm::mac_of(value).is_none() {
            let mac = state.random_mac();
            vm::with_mac(value, &mac)
        } else if vm::is_disk_key(key) {
            disks::allocate(state, node, vmid, value, ops).map_err(ApiError::fail)?
        } else {
            value.clone()
        };
        let shown = if key == "cipassword" {
            "<hidden>"
        } else {
            value.as_str()
        };
        changes.push(format!("-{key} '{shown}'"));
        if running && !vm::applies_while_running(key) {
            pending.insert(key.clone(), Some(stored));
        } else {
            pending.remove(key);
            config.insert(key.clone(), stored);
        }
    }
    if let Some(delete) = params.get("delete") {
        for key in delete
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|k| !k.is_empty())
        {
            changes.push(format!("-delete {key}"));
            if running && !vm::applies_while_running(key) {
                pending.insert(key.to_string(), None);
                continue;
            }
            pending.remove(key);
            let Some(old) = config.remove(key) else {
                continue;
            };
            if vm::is_disk_key(key) {
                let volid = vm::volid_of(&old).to_string();
                if vm::is_cdrom(&old) {
                    let owned = state.volume(node, &volid).is_some();
                    state
                        .volumes
                        .retain(|v| !(v.node == node && v.volid == volid));
                    if owned {
                        ops.push(VolumeOp::Remove { volid });
                    }
                } else if state.volume(node, &volid).is_some() {
                    let slot = (0..256)
                        .map(|i| format!("unused{i}"))
                        .find(|k| !config.contains_key(k))
                        .unwrap_or_else(|| "unused255".into());
                    config.insert(slot, volid);
                }
            }
        }
    }
    log.push(format!("update VM {vmid}: {}", changes.join(" ")));
    if let Some(vm) = state.vms.get_mut(&vmid) {
        vm.config = config;
        vm.pending = pending;
    }
    Ok(log)
}

/// The schema type of a config key decides whether PVE answers a number or a string.
fn typed(types: Option<&Map<String, Value>>, key: &str, value: &str) -> Value {
    let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let prop = types.and_then(|t| t.get(key).or_else(|| t.get(&format!("{base}[n]"))));
    match prop.and_then(|p| p.get("type")).and_then(Value::as_str) {
        Some("integer") | Some("boolean") => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(i64::from(vm::is_true(value)))),
        Some("number") => value
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(value)),
        _ => json!(value),
    }
}

/// `GET .../config`: the config with PVE's JSON types and `digest`.
pub(crate) fn get(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let schema = ctx.schema.lookup("/nodes/n/qemu/100/config");
    let types = schema
        .as_ref()
        .and_then(|m| m.method("POST"))
        .and_then(|m| m.parameters.get("properties"))
        .and_then(Value::as_object);
    // Pending values are shown unless `current=1`, as in PVE.
    let config = if ctx.flag("current").unwrap_or(false) {
        vm.config.clone()
    } else {
        vm.merged_config()
    };
    let mut out = Map::new();
    for (key, value) in &config {
        let shown = if key == "cipassword" {
            "**********"
        } else {
            value
        };
        out.insert(key.clone(), typed(types, key, shown));
    }
    out.insert("digest".into(), json!(digest(&vm.config)));
    Ok(Value::Object(out).into())
}

/// `PUT .../config`: applied before the answer.
pub(crate) async fn put(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut ops = Vec::new();
    apply(
        &mut ctx.cluster.lock(),
        ctx.node(),
        ctx.vmid(),
        ctx.params,
        &mut ops,
    )?;
    disks::run_ops(ctx.cluster, ctx.node(), ops)
        .await
        .map_err(ApiError::fail)?;
    Ok(Value::Null.into())
}

/// `POST .../config`: a `qmconfig` task; with `background_delay`, `null` if it ended OK in time.
pub(crate) async fn post(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let upid = {
        let mut state = ctx.cluster.lock();
        check_unlocked(vm_of(&state, ctx)?)?;
        let (node, vmid, params) = (ctx.node().to_string(), ctx.vmid(), ctx.params.clone());
        ctx.spawn_vm_task(
            &mut state,
            "qmconfig",
            vmid,
            "local-lvm",
            move |cluster| async move {
                let mut ops = Vec::new();
                let mut log = apply(&mut cluster.lock(), &node, vmid, &params, &mut ops)
                    .map_err(|e| e.message())?;
                log.extend(disks::run_ops(&cluster, &node, ops).await?);
                Ok(log)
            },
        )
    };
    if let Some(delay) = ctx
        .opt("background_delay")
        .and_then(|d| d.parse::<u64>().ok())
    {
        let exit = ctx
            .cluster
            .wait_task(&upid, Duration::from_secs(delay))
            .await;
        if exit.as_deref() == Some("OK") {
            return Ok(Value::Null.into());
        }
    }
    Ok(json!(upid).into())
}

/// `GET .../cloudinit/dump?type=user|network|meta`, generated from the current config.
pub(crate) fn dump(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let snippets = state.snippets.clone();
    let seed = cloudinit::render(vm.vmid, &vm.config, &|volid| snippets.get(volid).cloned())
        .map_err(ApiError::fail)?;
    let part = match ctx.param("type") {
        "user" => Part::User,
        "network" => Part::Network,
        _ => Part::Meta,
    };
    Ok(json!(cloudinit::dump(&seed, part)).into())
}

/// `GET .../pending`: `{key, value?, pending?, delete?}` for every key.
pub(crate) fn pending(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let hide = |key: &str, value: &str| {
        if key == "cipassword" {
            "**********".to_string()
        } else {
            value.to_string()
        }
    };
    let mut keys: Vec<&String> = vm.config.keys().chain(vm.pending.keys()).collect();
    keys.sort();
    keys.dedup();
    let list: Vec<Value> = keys
        .into_iter()
        .map(|key| {
            let mut entry = json!({"key": key});
            if let Some(value) = vm.config.get(key) {
                entry["value"] = json!(hide(key, value));
            }
            match vm.pending.get(key) {
                Some(Some(value)) => entry["pending"] = json!(hide(key, value)),
                Some(None) => entry["delete"] = json!(1),
                None => {}
            }
            entry
        })
        .collect();
    Ok(Value::Array(list).into())
}

fn is_cloudinit_key(key: &str) -> bool {
    key.starts_with("ci")
        || key.starts_with("ipconfig")
        || matches!(key, "sshkeys" | "nameserver" | "searchdomain")
}

/// `GET .../cloudinit`: the cloud-init keys, none pending.
pub(crate) fn cloudinit_get(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    let list: Vec<Value> = vm
        .config
        .iter()
        .filter(|(key, _)| is_cloudinit_key(key))
        .map(|(key, value)| {
            let shown = if key == "cipassword" {
                "**********"
            } else {
                value
            };
            json!({"key": key, "value": shown})
        })
        .collect();
    Ok(Value::Array(list).into())
}

/// `PUT .../cloudinit`: regenerates the drive of a running VM (its guest sees it at the next
/// cloud-init run; a start regenerates it anyway).
pub(crate) fn cloudinit_put(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let mut state = ctx.cluster.lock();
    let vm = vm_of(&state, ctx)?;
    check_unlocked(vm)?;
    let snippets = state.snippets.clone();
    let seed = cloudinit::render(vm.vmid, &vm.config, &|volid| snippets.get(volid).cloned())
        .map_err(ApiError::fail)?;
    let vmid = vm.vmid;
    if let Some(vm) = state.vms.get_mut(&vmid)
        && vm.running
    {
        vm.seed = Some(seed);
    }
    Ok(Value::Null.into())
}
