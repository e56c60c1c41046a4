//! Datasets and zvols under `tank` and how `pool.dataset.query` shows them (every ZFS
//! property as `{parsed, rawvalue, value, source, source_info}`); creating, updating and
//! deleting them is `dataset_writes.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{POOL, State};
use crate::query;
use crate::rpc::RpcError;

/// What `available` reports for the pool (1 TiB).
pub(super) const POOL_SIZE: u64 = 1 << 40;

/// Properties a create or update may set, with their default (value, parsed) when unset.
const PROPERTIES: &[(&str, &str, bool)] = &[
    // (name, default value, filesystem only)
    ("sync", "STANDARD", false),
    ("compression", "LZ4", false),
    ("deduplication", "OFF", false),
    ("checksum", "ON", false),
    ("copies", "1", false),
    ("readonly", "OFF", false),
    ("snapdev", "HIDDEN", false),
    ("reservation", "0", false),
    ("refreservation", "0", false),
    ("special_small_block_size", "0", false),
    ("managedby", "truenas", false),
    ("exec", "ON", true),
    ("snapdir", "HIDDEN", true),
    ("atime", "OFF", true),
    ("aclmode", "DISCARD", true),
    ("acltype", "POSIX", true),
    ("casesensitivity", "SENSITIVE", true),
    ("recordsize", "128K", true),
    ("quota", "0", true),
    ("refquota", "0", true),
    ("xattr", "SA", true),
];

/// Properties counted in bytes (shown as `1G`).
const SIZE_PROPERTIES: &[&str] = &[
    "reservation",
    "refreservation",
    "quota",
    "refquota",
    "special_small_block_size",
];

/// A zvol's own settings.
#[derive(Debug, Clone)]
pub(super) struct Volume {
    pub(super) size: u64,
    pub(super) blocksize: String,
    pub(super) sparse: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    pub(super) volume: Option<Volume>,
    /// Properties set locally (as the API spells them: `LZ4`, `ON`, `1073741824`).
    local: BTreeMap<String, Value>,
    comments: Option<String>,
    user_properties: BTreeMap<String, String>,
    /// Bytes of data written into it (`RunningTruenas::write_file`).
    pub used: u64,
    created: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A ZFS property as entries carry it.
fn prop(value: String, parsed: Value, source: &str) -> Value {
    json!({"parsed": parsed, "rawvalue": value.to_lowercase(), "value": value, "source": source, "source_info": null})
}

fn size_prop(bytes: u64, source: &str) -> Value {
    json!({"parsed": bytes, "rawvalue": bytes.to_string(), "value": human_size(bytes), "source": source, "source_info": null})
}

fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit]).replace(".00", "")
    }
}

/// `16K` → 16384.
pub(super) fn block_bytes(size: &str) -> u64 {
    let (digits, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: u64 = digits.parse().unwrap_or(0);
    match unit {
        "K" => n * 1024,
        _ => n,
    }
}

impl Dataset {
    pub(crate) fn pool_root() -> Self {
        Self {
            volume: None,
            local: BTreeMap::new(),
            comments: None,
            user_properties: BTreeMap::new(),
            used: 0,
            created: now_secs(),
        }
    }

    pub(crate) fn is_volume(&self) -> bool {
        self.volume.is_some()
    }

    /// `readonly=on` set on it.
    pub(crate) fn is_readonly(&self) -> bool {
        self.local.get("readonly") == Some(&Value::String("ON".into()))
    }

    pub(crate) fn volsize(&self) -> Option<u64> {
        self.volume.as_ref().map(|v| v.size)
    }

    /// Sets the properties named in `data` (create or update); `INHERIT` unsets one.
    pub(super) fn set_properties(&mut self, data: &Map<String, Value>) {
        for (name, default, _) in PROPERTIES {
            let _ = default;
            match data.get(*name) {
                Some(Value::String(v)) if v == "INHERIT" => {
                    self.local.remove(*name);
                }
                Some(Value::Null) | None => {}
                Some(v) => {
                    self.local.insert((*name).to_string(), v.clone());
                }
            }
        }
        if let Some(comments) = data.get("comments").and_then(Value::as_str) {
            self.comments = Some(comments.to_string());
        }
        if let Some(Value::Array(props)) = data.get("user_properties") {
            for p in props {
                if let (Some(k), Some(v)) = (
                    p.get("key").and_then(Value::as_str),
                    p.get("value").and_then(Value::as_str),
                ) {
                    self.user_properties.insert(k.to_string(), v.to_string());
                }
            }
        }
        if let Some(Value::Array(updates)) = data.get("user_properties_update") {
            for u in updates {
                let Some(key) = u.get("key").and_then(Value::as_str) else {
                    continue;
                };
                if u.get("remove").and_then(Value::as_bool) == Some(true) {
                    self.user_properties.remove(key);
                } else if let Some(v) = u.get("value").and_then(Value::as_str) {
                    self.user_properties.insert(key.to_string(), v.to_string());
                }
            }
        }
    }

    fn property(&self, name: &str, default: &str) -> Value {
        let (value, source) = match self.local.get(name) {
            Some(Value::String(s)) => (s.clone(), "LOCAL"),
            Some(Value::Number(n)) => (n.to_string(), "LOCAL"),
            Some(Value::Bool(b)) => ((if *b { "ON" } else { "OFF" }).to_string(), "LOCAL"),
            _ => (default.to_string(), "DEFAULT"),
        };
        if let Ok(number) = value.parse::<u64>() {
            if SIZE_PROPERTIES.contains(&name) {
                return size_prop(number, source);
            }
            return prop(value, json!(number), source);
        }
        let parsed = match value.as_str() {
            "ON" => Value::Bool(true),
            "OFF" => Value::Bool(false),
            other => Value::String(other.to_lowercase()),
        };
        prop(value, parsed, source)
    }
}

impl State {
    /// A dataset's entry as `pool.dataset.query` returns it.
    fn dataset_entry(&self, name: &str, extra: &Map<String, Value>) -> Value {
        let Some(ds) = self.datasets.get(name) else {
            return Value::Null;
        };
        let children = extra
            .get("retrieve_children")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let wanted: Option<Vec<&str>> = extra
            .get("properties")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_str).collect());
        let want = |p: &str| wanted.as_ref().is_none_or(|w| w.contains(&p));
        let used: u64 = self
            .datasets
            .iter()
            .filter(|(n, _)| *n == name || n.starts_with(&format!("{name}/")))
            .map(|(_, d)| {
                d.used
                    + d.volume
                        .as_ref()
                        .filter(|v| !v.sparse)
                        .map_or(0, |v| v.size)
            })
            .sum();
        let total_used: u64 = self.datasets.values().map(|d| d.used).sum();
        let mut entry = Map::new();
        entry.insert("id".into(), json!(name));
        entry.insert(
            "type".into(),
            json!(if ds.is_volume() {
                "VOLUME"
            } else {
                "FILESYSTEM"
            }),
        );
        entry.insert("name".into(), json!(name));
        entry.insert("pool".into(), json!(POOL));
        entry.insert("encrypted".into(), json!(false));
        entry.insert("encryption_root".into(), Value::Null);
        entry.insert("key_loaded".into(), json!(false));
        entry.insert("locked".into(), json!(false));
        entry.insert(
            "mountpoint".into(),
            if ds.is_volume() {
                Value::Null
            } else {
                json!(format!("/mnt/{name}"))
            },
        );
        if extra
            .get("retrieve_user_props")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            let props: Map<String, Value> = ds
                .user_properties
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"parsed": v, "rawvalue": v, "value": v, "source": "LOCAL", "source_info": null}),
                    )
                })
                .collect();
            entry.insert("user_properties".into(), Value::Object(props));
        }
        let mut children_entries = Vec::new();
        if children {
            let prefix = format!("{name}/");
            for child in self
                .datasets
                .keys()
                .filter(|n| n.starts_with(&prefix) && !n[prefix.len()..].contains('/'))
            {
                children_entries.push(self.dataset_entry(child, extra));
            }
        }
        entry.insert("children".into(), Value::Array(children_entries));
        let mut props: Vec<(&str, Value)> = Vec::new();
        props.push((
            "comments",
            prop(
                ds.comments.clone().unwrap_or_default(),
                json!(ds.comments.clone().unwrap_or_default()),
                if ds.comments.is_some() {
                    "LOCAL"
                } else {
                    "DEFAULT"
                },
            ),
        ));
        for (p, default, fs_only) in PROPERTIES {
            if !(*fs_only && ds.is_volume()) {
                props.push((p, ds.property(p, default)));
            }
        }
        if let Some(v) = &ds.volume {
            props.push(("volsize", size_prop(v.size, "LOCAL")));
            props.push((
                "volblocksize",
                prop(v.blocksize.clone(), json!(v.blocksize), "DEFAULT"),
            ));
        }
        props.push(("used", size_prop(used, "NONE")));
        props.push(("usedbydataset", size_prop(ds.used, "NONE")));
        props.push((
            "usedbychildren",
            size_prop(used - ds.used.min(used), "NONE"),
        ));
        props.push(("usedbysnapshots", size_prop(0, "NONE")));
        props.push(("usedbyrefreservation", size_prop(0, "NONE")));
        props.push((
            "available",
            size_prop(POOL_SIZE.saturating_sub(total_used), "NONE"),
        ));
        props.push((
            "creation",
            prop(ds.created.to_string(), json!(ds.created), "NONE"),
        ));
        props.push(("origin", prop(String::new(), json!(""), "NONE")));
        props.push(("compressratio", prop("1.00".into(), json!("1.00"), "NONE")));
        for (p, value) in props {
            if want(p) {
                entry.insert(p.to_string(), value);
            }
        }
        Value::Object(entry)
    }

    pub(crate) fn dataset_query(
        &self,
        filters: Option<&Value>,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        let empty = Map::new();
        let extra = options
            .and_then(|o| o.get("extra"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let flat = extra.get("flat").and_then(Value::as_bool).unwrap_or(true);
        let items = self
            .datasets
            .keys()
            .filter(|n| flat || !n.contains('/'))
            .map(|n| self.dataset_entry(n, extra))
            .collect();
        query::apply(items, filters, options)
    }

    pub(crate) fn dataset_get(&self, id: &str) -> Result<Value, RpcError> {
        if !self.datasets.contains_key(id) {
            return Err(RpcError::not_found(format!(
                "PoolDataset {id} does not exist"
            )));
        }
        Ok(self.dataset_entry(id, &Map::new()))
    }
}

/// ZFS's dataset name rules: alphanumerics and `_ - : . ` space, `/` between components.
pub(super) fn valid_name(name: &str) -> bool {
    name.split('/').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-:. ".contains(c))
    })
}
