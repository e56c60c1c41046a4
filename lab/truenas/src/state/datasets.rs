//! `pool.dataset.*`: filesystems and zvols under `tank`, with TrueNAS's rules
//! (`plugins/pool_/dataset.py`): the parent must exist unless `create_ancestors`, a name is
//! taken once, children need `recursive` to go, and deleting runs the attachment delegates
//! (a zvol takes its extent, target-extent and emptied targets along; a filesystem its NFS
//! shares).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{POOL, State};
use crate::query;
use crate::rpc::{EFAULT, ENOENT, ENOTEMPTY, FieldError, RpcError};

/// ZFS_MAX_DATASET_NAME_LEN.
const MAX_NAME_LEN: usize = 200;
/// What `available` reports for the pool (1 TiB).
const POOL_SIZE: u64 = 1 << 40;

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
struct Volume {
    size: u64,
    blocksize: String,
    sparse: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    volume: Option<Volume>,
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
fn block_bytes(size: &str) -> u64 {
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

    pub(crate) fn volsize(&self) -> Option<u64> {
        self.volume.as_ref().map(|v| v.size)
    }

    /// Sets the properties named in `data` (create or update); `INHERIT` unsets one.
    fn set_properties(&mut self, data: &Map<String, Value>) {
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
                        json!({"value": v, "rawvalue": v, "source": "LOCAL", "parsed": v}),
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

    pub(crate) fn dataset_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let attr = "pool_dataset_create.name";
        let data = data.as_object().cloned().unwrap_or_default();
        let name = data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // pydantic's smart union: without `type`, params that only the volume model
        // accepts (a `volsize`) make a volume.
        let volume = match data.get("type").and_then(Value::as_str) {
            Some(kind) => kind == "VOLUME",
            None => data.contains_key("volsize"),
        };
        if !name.contains('/') {
            return Err(RpcError::field(
                attr,
                "You need a full name, e.g. pool/newdataset",
            ));
        }
        if !valid_name(&name) {
            return Err(RpcError::field(attr, "Invalid dataset name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(RpcError::field(
                attr,
                format!("Dataset name length should be less than or equal to {MAX_NAME_LEN}"),
            ));
        }
        if name.ends_with(' ') {
            return Err(RpcError::field(
                attr,
                "Trailing spaces are not permitted in dataset names",
            ));
        }
        let pool = name.split('/').next().unwrap_or_default();
        if pool != POOL {
            return Err(RpcError::field(
                attr,
                format!("zpool ({pool}) does not exist."),
            ));
        }
        if self.datasets.contains_key(&name) {
            return Err(RpcError::field(
                attr,
                format!("Path /mnt/{name} already exists"),
            ));
        }
        let ancestors: Vec<String> = {
            let parts: Vec<&str> = name.split('/').collect();
            (2..parts.len()).map(|n| parts[..n].join("/")).collect()
        };
        let missing: Vec<&String> = ancestors
            .iter()
            .filter(|a| !self.datasets.contains_key(*a))
            .collect();
        let create_ancestors = data
            .get("create_ancestors")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(parent) = ancestors.last()
            && !create_ancestors
            && missing.contains(&parent)
        {
            return Err(RpcError::field(
                attr,
                format!("Parent dataset ({parent}) does not exist."),
            ));
        }
        if let Some(volume_parent) = ancestors
            .iter()
            .find(|a| self.datasets.get(*a).is_some_and(Dataset::is_volume))
        {
            return Err(RpcError::field(
                attr,
                format!(
                    "Parent dataset ({volume_parent}) is a volume; volumes cannot have children."
                ),
            ));
        }
        let mut dataset = Dataset::pool_root();
        if volume {
            let size = data.get("volsize").and_then(Value::as_u64).unwrap_or(0);
            let blocksize = data
                .get("volblocksize")
                .and_then(Value::as_str)
                .unwrap_or("16K")
                .to_string();
            let block = block_bytes(&blocksize).max(1);
            if size == 0 || size % block != 0 {
                return Err(RpcError::Validation(vec![FieldError::new(
                    "pool_dataset_create.volsize",
                    format!("Volume size should be a multiple of volume block size ({blocksize})"),
                )]));
            }
            dataset.volume = Some(Volume {
                size,
                blocksize,
                sparse: data.get("sparse").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        dataset.set_properties(&data);
        for ancestor in missing {
            self.datasets.insert(ancestor.clone(), Dataset::pool_root());
            self.make_backing(ancestor)
                .map_err(|e| RpcError::call(EFAULT, e))?;
        }
        self.datasets.insert(name.clone(), dataset);
        self.make_backing(&name)
            .map_err(|e| RpcError::call(EFAULT, e))?;
        self.dataset_get(&name)
    }

    pub(crate) fn dataset_update(&mut self, id: &str, data: &Value) -> Result<Value, RpcError> {
        let data = data.as_object().cloned().unwrap_or_default();
        let Some(dataset) = self.datasets.get(id) else {
            return Err(RpcError::Validation(vec![
                FieldError::new("id", format!("{id} does not exist")).with_errno(ENOENT),
            ]));
        };
        let volume = dataset.is_volume();
        let kind = if volume { "VOLUME" } else { "FILESYSTEM" };
        let mut errors = Vec::new();
        for (name, _, fs_only) in PROPERTIES {
            if *fs_only && volume && data.contains_key(*name) {
                errors.push(FieldError::new(
                    format!("pool_dataset_update.{name}"),
                    format!("This field is not valid for {kind}"),
                ));
            }
        }
        if !volume && data.contains_key("volsize") {
            errors.push(FieldError::new(
                "pool_dataset_update.volsize",
                format!("This field is not valid for {kind}"),
            ));
        }
        if let (Some(size), Some(v)) =
            (data.get("volsize").and_then(Value::as_u64), &dataset.volume)
        {
            let block = block_bytes(&v.blocksize).max(1);
            if size % block != 0 {
                errors.push(FieldError::new(
                    "pool_dataset_update.volsize",
                    format!(
                        "Volume size should be a multiple of volume block size ({})",
                        v.blocksize
                    ),
                ));
            } else if size < v.size {
                errors.push(FieldError::new(
                    "pool_dataset_update.volsize",
                    "You cannot shrink a zvol from GUI as this may lead to data loss.",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(RpcError::Validation(errors));
        }
        if let Some(dataset) = self.datasets.get_mut(id) {
            dataset.set_properties(&data);
            if let (Some(size), Some(v)) = (
                data.get("volsize").and_then(Value::as_u64),
                dataset.volume.as_mut(),
            ) {
                v.size = size;
            }
        }
        self.make_backing(id)
            .map_err(|e| RpcError::call(EFAULT, e))?;
        self.dataset_get(id)
    }

    pub(crate) fn dataset_delete(
        &mut self,
        id: &str,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        if !self.datasets.contains_key(id) {
            return Err(RpcError::not_found(format!(
                "PoolDataset {id} does not exist"
            )));
        }
        if !id.contains('/') {
            return Err(RpcError::field("id", "Root datasets can not be deleted."));
        }
        let recursive = options
            .and_then(|o| o.get("recursive"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let prefix = format!("{id}/");
        let doomed: Vec<String> = self
            .datasets
            .keys()
            .filter(|n| *n == id || n.starts_with(&prefix))
            .cloned()
            .collect();
        if doomed.len() > 1 && !recursive {
            let children: Vec<&str> = doomed.iter().skip(1).map(String::as_str).collect();
            return Err(RpcError::call(
                ENOTEMPTY,
                format!(
                    "Failed to delete dataset: cannot destroy '{id}': filesystem has children\nuse '-r' to destroy the following datasets:\n{}",
                    children.join("\n")
                ),
            ));
        }
        // The attachment delegates: what the datasets carried goes with them.
        for name in &doomed {
            if self.datasets.get(name).is_some_and(Dataset::is_volume) {
                self.iscsi.detach_zvol(name);
            }
        }
        self.nfs.detach_path(&format!("/mnt/{id}"));
        for name in doomed.iter().rev() {
            self.remove_backing(name);
            self.datasets.remove(name);
        }
        Ok(Value::Bool(true))
    }
}

/// ZFS's dataset name rules: alphanumerics and `_ - : . ` space, `/` between components.
fn valid_name(name: &str) -> bool {
    name.split('/').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-:. ".contains(c))
    })
}
