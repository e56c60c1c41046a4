//! Storage list and content, upload (multipart, `imgcopy`) and download-url (`download`).

use serde_json::{Value, json};

use super::cluster::used_bytes;
use super::state::{STORAGES, StorageDef, Volume, now_secs, storage};
use super::{Ctx, Out, disks};
use crate::api::reply::ApiError;
use crate::backend::VolumeOp;

fn storage_of(ctx: &Ctx<'_>) -> Result<&'static StorageDef, ApiError> {
    let id = ctx.param("storage");
    storage(id).ok_or_else(|| ApiError::fail(format!("storage '{id}' does not exist")))
}

/// `GET /nodes/{node}/storage[?content=..&storage=..]`.
pub(crate) fn list(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let wanted: Vec<&str> = ctx
        .opt("content")
        .map(|c| c.split(',').collect())
        .unwrap_or_default();
    let list: Vec<Value> = STORAGES
        .iter()
        .filter(|s| ctx.opt("storage").is_none_or(|id| id == s.id))
        .filter(|s| wanted.iter().all(|w| s.content.contains(w)))
        .map(|s| {
            let used = used_bytes(&state, ctx.node(), s.id);
            json!({
                "storage": s.id,
                "type": s.kind,
                "content": s.content.join(","),
                "active": 1, "enabled": 1, "shared": 0,
                "total": s.total,
                "used": used,
                "avail": s.total.saturating_sub(used),
                "used_fraction": used as f64 / s.total as f64,
            })
        })
        .collect();
    Ok(Value::Array(list).into())
}

fn volume_json(v: &Volume) -> Value {
    let mut out = json!({
        "volid": v.volid, "format": v.format, "size": v.size,
        "content": v.content, "ctime": v.ctime,
    });
    if let Some(vmid) = v.vmid {
        out["vmid"] = json!(vmid);
    }
    if let Some(parent) = &v.parent {
        out["parent"] = json!(parent);
    }
    out
}

/// `GET /nodes/{node}/storage/{storage}/content[?content=..&vmid=..]`.
pub(crate) fn content(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let def = storage_of(ctx)?;
    let state = ctx.cluster.lock();
    let vmid: Option<u32> = ctx.opt("vmid").and_then(|v| v.parse().ok());
    let mut list: Vec<Value> = state
        .volumes
        .iter()
        .filter(|v| v.node == ctx.node() && v.storage == def.id)
        .filter(|v| ctx.opt("content").is_none_or(|c| c == v.content))
        .filter(|v| vmid.is_none_or(|id| v.vmid == Some(id)))
        .map(volume_json)
        .collect();
    if ctx.opt("content").is_none_or(|c| c == "snippets") && def.content.contains(&"snippets") {
        for (volid, text) in &state.snippets {
            if volid.starts_with(&format!("{}:", def.id)) {
                list.push(json!({"volid": volid, "format": "snippet", "size": text.len(), "content": "snippets", "ctime": 0}));
            }
        }
    }
    Ok(Value::Array(list).into())
}

/// The file name rules of pve-storage for each content type.
fn check_filename(content: &str, filename: &str) -> Result<(String, String), ApiError> {
    let lower = filename.to_ascii_lowercase();
    let (dir, format) = match content {
        "iso" if lower.ends_with(".iso") || lower.ends_with(".img") => ("iso", "iso"),
        "vztmpl"
            if [".tar.gz", ".tar.xz", ".tar.zst", ".tgz"]
                .iter()
                .any(|e| lower.ends_with(e)) =>
        {
            ("vztmpl", "tgz")
        }
        "import" => match [".qcow2", ".raw", ".vmdk", ".ova"]
            .iter()
            .find(|e| lower.ends_with(*e))
        {
            Some(ext) => ("import", &ext[1..]),
            None => return Err(ApiError::param("filename", "wrong file extension")),
        },
        _ => return Err(ApiError::param("filename", "wrong file extension")),
    };
    if filename.contains('/') || filename.starts_with('.') {
        return Err(ApiError::param("filename", "invalid filename"));
    }
    Ok((format!("{dir}/{filename}"), format.to_string()))
}

fn check_content(def: &StorageDef, content: &str) -> Result<(), ApiError> {
    if def.content.contains(&content) {
        Ok(())
    } else {
        Err(ApiError::fail(format!(
            "storage '{}' does not support '{content}' content",
            def.id
        )))
    }
}

/// `POST .../upload` (multipart): an `imgcopy` task that checks the optional checksum.
pub(crate) fn upload(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let def = storage_of(ctx)?;
    let content = ctx.param("content").to_string();
    check_content(def, &content)?;
    let (path, format) = check_filename(&content, ctx.param("filename"))?;
    let upload = ctx
        .upload
        .cloned()
        .ok_or_else(|| ApiError::param("filename", "no file was uploaded"))?;
    let expected = ctx.opt("checksum").map(|c| {
        (
            ctx.param("checksum-algorithm").to_string(),
            c.to_ascii_lowercase(),
        )
    });
    let volid = format!("{}:{path}", def.id);
    let node = ctx.node().to_string();
    let mut state = ctx.cluster.lock();
    let injected = ctx.injected(0, def.id);
    let upid = ctx.cluster.spawn_task(
        &mut state,
        ctx.node(),
        "imgcopy",
        "",
        ctx.caller,
        ctx.task_duration(),
        injected,
        move |cluster, injected| async move {
            if let Some(message) = injected {
                return Err(message);
            }
            let mut log = vec![format!(
                "starting file import from: /var/tmp/pveupload-kiln-lab"
            )];
            if let Some((algorithm, want)) = expected {
                let got = upload
                    .digests
                    .get(algorithm.as_str())
                    .cloned()
                    .unwrap_or_default();
                if got != want {
                    return Err(format!("checksum mismatch: got '{got}' != expect '{want}'"));
                }
                log.push("validating checksum... OK".to_string());
            }
            if let Some(spooled) = &upload.spooled {
                let op = VolumeOp::StoreUpload {
                    spooled: spooled.path.clone(),
                    volid: volid.clone(),
                };
                log.extend(disks::run_ops(&cluster, &node, vec![op]).await?);
            }
            cluster.lock().add_volume(Volume {
                node,
                storage: volid.split(':').next().unwrap_or_default().to_string(),
                volid: volid.clone(),
                content,
                format,
                size: upload.size,
                vmid: None,
                parent: None,
                ctime: now_secs(),
            });
            log.push(format!("target file: {volid}"));
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

/// `POST .../download-url`: a `download` task. The sim backend never fetches anything (the
/// lab sends no traffic off loopback): the volume appears empty and the task ends with a
/// warning saying the checksum was not verified.
pub(crate) fn download(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let def = storage_of(ctx)?;
    let content = ctx.param("content").to_string();
    check_content(def, &content)?;
    if ctx.opt("compression").is_some() && content != "iso" {
        return Err(ApiError::param(
            "compression",
            "decompression is only supported for content type 'iso'",
        ));
    }
    let (path, format) = check_filename(&content, ctx.param("filename"))?;
    let volid = format!("{}:{path}", def.id);
    let node = ctx.node().to_string();
    let mut state = ctx.cluster.lock();
    if state.volume(&node, &volid).is_some() {
        return Err(ApiError::fail(format!(
            "refusing to override existing file '/var/lib/vz/{path}'"
        )));
    }
    let url = ctx.param("url").to_string();
    let checksum = ctx.opt("checksum").is_some();
    let injected = ctx.injected(0, def.id);
    let upid = ctx.cluster.spawn_task(
        &mut state,
        ctx.node(),
        "download",
        ctx.param("filename"),
        ctx.caller,
        ctx.task_duration(),
        injected,
        move |cluster, injected| async move {
            if let Some(message) = injected {
                return Err(message);
            }
            let mut log = vec![format!("downloading {url} to /var/lib/vz/{path}")];
            log.push(format!(
                "WARN: kiln-lab (sim) does not fetch '{url}': the file is empty{}",
                if checksum {
                    " and its checksum was not verified"
                } else {
                    ""
                }
            ));
            cluster.lock().add_volume(Volume {
                node,
                storage: volid.split(':').next().unwrap_or_default().to_string(),
                volid,
                content,
                format,
                size: 0,
                vmid: None,
                parent: None,
                ctime: now_secs(),
            });
            Ok(log)
        },
    );
    Ok(json!(upid).into())
}

fn storage_config(def: &StorageDef) -> Value {
    let mut out = json!({
        "storage": def.id,
        "type": def.kind,
        "content": def.content.join(","),
        "shared": 0,
        "digest": "0000000000000000000000000000000000000000",
    });
    match def.kind {
        "dir" => out["path"] = json!("/var/lib/vz"),
        _ => {
            out["vgname"] = json!("pve");
            out["thinpool"] = json!("data");
        }
    }
    out
}

/// `GET /storage[?type=]`: the datacenter storage configuration (clients read `path` there).
pub(crate) fn config_list(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let list: Vec<Value> = STORAGES
        .iter()
        .filter(|s| ctx.opt("type").is_none_or(|t| t == s.kind))
        .map(storage_config)
        .collect();
    Ok(Value::Array(list).into())
}

/// `GET /storage/{storage}`.
pub(crate) fn config_get(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    Ok(storage_config(storage_of(ctx)?).into())
}
