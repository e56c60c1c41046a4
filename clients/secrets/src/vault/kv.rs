//! The KV v2 calls kiln makes: read, write with check-and-set, metadata,
//! and list.

use std::time::SystemTime;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::VaultClient;
use super::error::VaultError;
use crate::store::{Cas, Data};

/// A KV v2 secret as read: its values and its current version.
pub struct KvSecret {
    pub data: Data,
    pub version: u64,
    /// When this version was written.
    pub created: Option<SystemTime>,
}

/// A KV v2 secret's metadata.
pub struct KvMeta {
    pub current_version: u64,
    pub created: Option<SystemTime>,
    pub updated: Option<SystemTime>,
}

fn time(value: &Value) -> Option<SystemTime> {
    value
        .as_str()
        .and_then(|text| humantime::parse_rfc3339_weak(text).ok())
}

/// The `data` of a GET on `api`, or `None` when Vault answers 404.
async fn get_data(client: &VaultClient, api: &str) -> Result<Option<Value>, VaultError> {
    let answer = client.call(Method::GET, api, None).await?;
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !answer.status.is_success() {
        return Err(client.failure(&Method::GET, api, &answer));
    }
    answer
        .body
        .as_ref()
        .and_then(|body| body.get("data"))
        .cloned()
        .map(Some)
        .ok_or_else(|| client.unexpected(&Method::GET, api, "no `data` in the answer"))
}

/// The latest version of `<mount>/<path>`, or `None` if there is none (never
/// written, or its latest version deleted or destroyed).
pub async fn read(
    client: &VaultClient,
    mount: &str,
    path: &str,
) -> Result<Option<KvSecret>, VaultError> {
    let api = format!("{mount}/data/{path}");
    let Some(data) = get_data(client, &api).await? else {
        return Ok(None);
    };
    let values = match &data["data"] {
        Value::Object(values) => values
            .iter()
            .filter_map(|(key, value)| secret_of(value).map(|secret| (key.clone(), secret)))
            .collect(),
        Value::Null => return Ok(None),
        _ => {
            return Err(client.unexpected(
                &Method::GET,
                &api,
                "`data.data` is not an object (is this a KV v1 mount?)",
            ));
        }
    };
    Ok(Some(KvSecret {
        data: values,
        version: data["metadata"]["version"].as_u64().unwrap_or(0),
        created: time(&data["metadata"]["created_time"]),
    }))
}

/// Writes a new version; returns its number. A failed check-and-set is a
/// 400 that [`is_cas_conflict`] recognises.
pub async fn write(
    client: &VaultClient,
    mount: &str,
    path: &str,
    data: &Data,
    cas: Cas,
) -> Result<u64, VaultError> {
    let api = format!("{mount}/data/{path}");
    let values: Map<String, Value> = data
        .iter()
        .map(|(key, value)| (key.clone(), Value::from(value.expose_secret())))
        .collect();
    let mut body = json!({ "data": values });
    match cas {
        Cas::Any => {}
        Cas::Absent => body["options"] = json!({ "cas": 0 }),
        Cas::Version(version) => body["options"] = json!({ "cas": version }),
    }
    let answer = client.call(Method::POST, &api, Some(&body)).await;
    zero_strings(&mut body);
    let answer = answer?;
    if !answer.status.is_success() {
        return Err(client.failure(&Method::POST, &api, &answer));
    }
    answer
        .body
        .as_ref()
        .and_then(|body| body["data"]["version"].as_u64())
        .ok_or_else(|| client.unexpected(&Method::POST, &api, "no version in the answer"))
}

/// Overwrites the secret values inside a JSON body before it is dropped.
fn zero_strings(value: &mut Value) {
    match value {
        Value::String(text) => zeroize::Zeroize::zeroize(text),
        Value::Object(map) => map.values_mut().for_each(zero_strings),
        Value::Array(items) => items.iter_mut().for_each(zero_strings),
        _ => {}
    }
}

/// Whether a write failed its check-and-set condition.
pub fn is_cas_conflict(error: &VaultError) -> bool {
    error.status() == Some(400) && error.errors().contains("check-and-set")
}

/// The metadata of `<mount>/<path>`, or `None` if it was never written.
pub async fn metadata(
    client: &VaultClient,
    mount: &str,
    path: &str,
) -> Result<Option<KvMeta>, VaultError> {
    let api = format!("{mount}/metadata/{path}");
    let Some(data) = get_data(client, &api).await? else {
        return Ok(None);
    };
    Ok(Some(KvMeta {
        current_version: data["current_version"].as_u64().unwrap_or(0),
        created: time(&data["created_time"]),
        updated: time(&data["updated_time"]),
    }))
}

/// Every secret below `folder`, as paths relative to it.
pub async fn list_recursive(
    client: &VaultClient,
    mount: &str,
    folder: &str,
) -> Result<Vec<String>, VaultError> {
    let mut found = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(prefix) = pending.pop() {
        let api = format!("{mount}/metadata/{folder}/{prefix}");
        let list = Method::from_bytes(b"LIST").map_err(|error| {
            VaultError::Config(format!("the LIST method is not available: {error}"))
        })?;
        let answer = client.call(list.clone(), &api, None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            continue;
        }
        if !answer.status.is_success() {
            return Err(client.failure(&list, &api, &answer));
        }
        let keys = answer
            .body
            .as_ref()
            .and_then(|body| body["data"]["keys"].as_array())
            .ok_or_else(|| client.unexpected(&list, &api, "no `data.keys` in the answer"))?;
        for key in keys.iter().filter_map(Value::as_str) {
            let full = format!("{prefix}{key}");
            if full.ends_with('/') {
                pending.push(full);
            } else {
                found.push(full);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A secret value taken out of a JSON answer.
fn secret_of(value: &Value) -> Option<SecretString> {
    match value {
        Value::String(text) => Some(SecretString::from(text.as_str())),
        Value::Null => None,
        other => Some(SecretString::from(other.to_string())),
    }
}
