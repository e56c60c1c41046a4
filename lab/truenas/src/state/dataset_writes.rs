//! `pool.dataset.create/update/delete` as TS-25.10.6's `plugins/pool_/dataset.py` does them:
//! name checks, the nearest existing parent (walking up with `create_ancestors`), volumes
//! as children refused, `Path … already exists`, the volume checks (80 % of the parent's
//! available space without `force_size`, a multiple of `volblocksize`), fields that do not
//! apply to the type, `user_properties_update`; a delete needs `recursive` for children and
//! runs the attachment delegates (a zvol takes its extent, target-extent and emptied targets
//! along; a filesystem its NFS shares).

use serde_json::{Map, Value};

use super::datasets::{POOL_SIZE, Volume, block_bytes, valid_name};
use super::{Dataset, POOL, State};
use crate::rpc::{EFAULT, ENOENT, ENOTEMPTY, FieldError, RpcError};

/// `__common_validation`: filesystem properties a volume does not have.
const FILESYSTEM_ONLY: &[&str] = &[
    "aclmode",
    "acltype",
    "atime",
    "casesensitivity",
    "quota",
    "refquota",
    "recordsize",
];
/// … and volume properties a filesystem does not have.
const VOLUME_ONLY: &[&str] = &["force_size", "sparse", "volsize", "volblocksize"];

fn check(list: Vec<FieldError>) -> Result<(), RpcError> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(RpcError::Validation(list))
    }
}

impl State {
    /// The space a new child of `parent` may use.
    fn available(&self) -> u64 {
        POOL_SIZE.saturating_sub(self.datasets.values().map(|d| d.used).sum())
    }

    /// The checks both create and update make on a volume's size.
    fn check_volume(
        &self,
        schema: &str,
        data: &Map<String, Value>,
        blocksize: &str,
        extra_available: u64,
        list: &mut Vec<FieldError>,
    ) {
        let Some(size) = data.get("volsize").and_then(Value::as_u64) else {
            return;
        };
        let force = data.get("force_size").and_then(Value::as_bool) == Some(true);
        let available = self.available() + extra_available;
        if size as f64 > available as f64 * 0.80 && !force {
            list.push(FieldError::new(
                format!("{schema}.volsize"),
                "It is not recommended to use more than 80% of your available space for VOLUME",
            ));
        }
        if size % block_bytes(blocksize).max(1) != 0 {
            list.push(FieldError::new(
                format!("{schema}.volsize"),
                "Volume size should be a multiple of volume block size",
            ));
        }
    }

    pub(crate) fn dataset_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let schema = "pool_dataset_create";
        let attr = "pool_dataset_create.name";
        let mut data = data.as_object().cloned().unwrap_or_default();
        let name = data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // pydantic's smart union: without `type`, params only the volume model accepts
        // (a `volsize`) make a volume.
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
        if name.ends_with(' ') {
            return Err(RpcError::field(
                attr,
                "Trailing spaces are not permitted in dataset names",
            ));
        }
        let create_ancestors = data.get("create_ancestors").and_then(Value::as_bool) == Some(true);
        let mut parent = name.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        if create_ancestors {
            // The nearest ancestor that exists (at worst the pool).
            while !self.datasets.contains_key(&parent) {
                match parent.rsplit_once('/') {
                    Some((up, _)) => parent = up.to_string(),
                    None => break,
                }
            }
        }
        let Some(parent_dataset) = self.datasets.get(&parent) else {
            let message = if create_ancestors {
                "Please specify a pool which exists for the dataset/volume to be created"
                    .to_string()
            } else if parent.contains('/') {
                format!("Parent dataset ({parent}) does not exist.")
            } else {
                format!("zpool ({parent}) does not exist.")
            };
            return Err(RpcError::field(attr, message));
        };
        let mut list = Vec::new();
        if parent_dataset.is_readonly() {
            let top = name.split('/').next().unwrap_or_default();
            list.push(FieldError::new(
                format!("{schema}.readonly"),
                format!("Turn off readonly mode on {parent} to create {top}"),
            ));
            return Err(RpcError::Validation(list));
        }
        if volume {
            let blocksize = data
                .get("volblocksize")
                .and_then(Value::as_str)
                .unwrap_or("16K")
                .to_string();
            data.insert("volblocksize".into(), Value::String(blocksize.clone()));
            self.check_volume(schema, &data, &blocksize, 0, &mut list);
        }
        check(std::mem::take(&mut list))?;
        if parent_dataset.is_volume() {
            return Err(RpcError::field(
                attr,
                format!("{parent}: parent may not be a ZFS volume"),
            ));
        }
        if self.datasets.contains_key(&name) {
            return Err(RpcError::field(
                attr,
                format!("Path /mnt/{name} already exists"),
            ));
        }
        let mut dataset = Dataset::pool_root();
        if volume {
            dataset.volume = Some(Volume {
                size: data.get("volsize").and_then(Value::as_u64).unwrap_or(0),
                blocksize: data
                    .get("volblocksize")
                    .and_then(Value::as_str)
                    .unwrap_or("16K")
                    .to_string(),
                sparse: data.get("sparse").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        dataset.set_properties(&data);
        // `zfs create -p`: the missing ancestors are plain filesystems.
        let parts: Vec<&str> = name.split('/').collect();
        for depth in 2..parts.len() {
            let ancestor = parts[..depth].join("/");
            if !self.datasets.contains_key(&ancestor) {
                self.datasets.insert(ancestor.clone(), Dataset::pool_root());
                self.make_backing(&ancestor)
                    .map_err(|e| RpcError::call(EFAULT, e))?;
            }
        }
        self.datasets.insert(name.clone(), dataset);
        self.make_backing(&name)
            .map_err(|e| RpcError::call(EFAULT, e))?;
        self.dataset_get(&name)
    }

    pub(crate) fn dataset_update(&mut self, id: &str, data: &Value) -> Result<Value, RpcError> {
        let schema = "pool_dataset_update";
        let data = data.as_object().cloned().unwrap_or_default();
        let Some(dataset) = self.datasets.get(id) else {
            return Err(RpcError::Validation(vec![
                FieldError::new("id", format!("{id} does not exist")).with_errno(ENOENT),
            ]));
        };
        let mut list = Vec::new();
        let (kind, not_here) = if dataset.is_volume() {
            ("VOLUME", FILESYSTEM_ONLY)
        } else {
            ("FILESYSTEM", VOLUME_ONLY)
        };
        for field in not_here.iter().filter(|f| data.contains_key(**f)) {
            list.push(FieldError::new(
                format!("{schema}.{field}"),
                format!("This field is not valid for {kind}"),
            ));
        }
        if let Some(volume) = &dataset.volume {
            // The zvol's own size counts as available when it is resized.
            self.check_volume(schema, &data, &volume.blocksize, volume.size, &mut list);
            if data
                .get("volsize")
                .and_then(Value::as_u64)
                .is_some_and(|size| size < volume.size)
            {
                list.push(FieldError::new(
                    format!("{schema}.volsize"),
                    "You cannot shrink a zvol from GUI, this may lead to data loss.",
                ));
            }
        }
        let updates = data.get("user_properties_update").and_then(Value::as_array);
        match (
            data.get("user_properties").and_then(Value::as_array),
            updates,
        ) {
            (Some(props), Some(updates)) if !props.is_empty() && !updates.is_empty() => {
                list.push(FieldError::new(
                    format!("{schema}.user_properties_update"),
                    "Should not be specified when \"user_properties\" are explicitly specified",
                ));
            }
            (_, Some(updates)) => {
                for (index, update) in updates.iter().enumerate() {
                    let at = format!("{schema}.user_properties_update.{index}");
                    let has_value = update.get("value").is_some();
                    let remove = update.get("remove").and_then(Value::as_bool) == Some(true);
                    if has_value && remove {
                        list.push(FieldError::new(
                            format!("{at}.remove"),
                            "When \"value\" is specified, this cannot be set",
                        ));
                    } else if !has_value && update.get("remove").is_none() {
                        list.push(FieldError::new(
                            format!("{at}.value"),
                            "Either \"value\" or \"remove\" must be specified",
                        ));
                    }
                }
            }
            _ => {}
        }
        check(list)?;
        if let Some(dataset) = self.datasets.get_mut(id) {
            dataset.set_properties(&data);
            if let (Some(size), Some(volume)) = (
                data.get("volsize").and_then(Value::as_u64),
                dataset.volume.as_mut(),
            ) {
                volume.size = size;
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
        let recursive = options
            .and_then(|o| o.get("recursive"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let below = format!("{id}/");
        // Children are looked for before the dataset itself, as the middleware does.
        if !recursive && self.datasets.keys().any(|n| n.starts_with(&below)) {
            return Err(RpcError::call(
                ENOTEMPTY,
                format!("Failed to delete dataset: cannot destroy '{id}': filesystem has children"),
            ));
        }
        self.dataset_get(id)?;
        if id == POOL {
            // libzfs refuses to destroy a pool's root dataset.
            return Err(RpcError::call(
                EFAULT,
                format!(
                    "Failed to delete dataset: cannot destroy '{id}': operation does not apply to pools"
                ),
            ));
        }
        let doomed: Vec<String> = self
            .datasets
            .keys()
            .filter(|n| *n == id || n.starts_with(&below))
            .cloned()
            .collect();
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
