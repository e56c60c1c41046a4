//! The emulated NAS: one pool `tank` with its datasets and zvols, the iSCSI and NFS
//! configuration and the services, in memory; zvols backed by sparse files and datasets by
//! directories when a data dir is given. Each table numbers its rows as the middleware's
//! SQLite tables do: from 1, never reusing an id.

pub(crate) mod accounts;
pub(crate) mod api_keys;
mod dataset_writes;
mod datasets;
mod iscsi;
mod nfs;
mod privileges;
pub(crate) mod services;
mod targets;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

pub(crate) use datasets::Dataset;
pub(crate) use iscsi::Iscsi;
pub(crate) use nfs::Nfs;
pub(crate) use services::Service;

use serde_json::{Map, Value};

use crate::datapath::{DataPath, IscsiView, NfsView};
use crate::rpc::{ESERVICESTARTFAILURE, RpcError};

/// The one pool.
pub(crate) const POOL: &str = "tank";

pub(crate) struct State {
    pub data_dir: Option<PathBuf>,
    /// The NAS's own addresses (portals may listen on them besides the wildcards).
    pub host_ips: Vec<IpAddr>,
    pub datasets: BTreeMap<String, Dataset>,
    pub iscsi: Iscsi,
    pub nfs: Nfs,
    pub services: Vec<Service>,
    /// Users, groups, privileges and API keys (`accounts.rs`).
    pub accounts: accounts::Accounts,
    /// What the data path was last told, so that it hears only of changes.
    sent_iscsi: Option<IscsiView>,
    sent_nfs: Option<NfsView>,
}

impl State {
    pub(crate) fn new(data_dir: Option<PathBuf>, host_ips: Vec<IpAddr>) -> Result<Self, String> {
        let mut state = Self {
            data_dir,
            host_ips,
            datasets: BTreeMap::new(),
            iscsi: Iscsi::default(),
            nfs: Nfs::default(),
            services: services::initial(),
            accounts: accounts::Accounts::initial(),
            sent_iscsi: None,
            sent_nfs: None,
        };
        state
            .datasets
            .insert(POOL.to_string(), Dataset::pool_root());
        state.make_backing(POOL)?;
        Ok(state)
    }

    /// Whether a service is running (`iscsitarget`, `nfs`).
    pub(crate) fn running(&self, service: &str) -> bool {
        self.services.iter().any(|s| s.name == service && s.running)
    }

    /// Tells the data path what changed. `starting` names a service being started: its
    /// data-path failure fails the start; any other failure is a failed reload, logged.
    pub(crate) fn sync_data_path(
        &mut self,
        data_path: &dyn DataPath,
        starting: Option<&str>,
    ) -> Result<(), RpcError> {
        let iscsi = self.iscsi_view();
        if self.sent_iscsi.as_ref() != Some(&iscsi) {
            match data_path.iscsi(&iscsi) {
                Ok(()) => self.sent_iscsi = Some(iscsi),
                Err(e) if starting == Some("iscsitarget") => {
                    return Err(start_failure("iscsitarget", &e));
                }
                Err(e) => tracing::warn!("iSCSI data path reload failed: {e}"),
            }
        }
        let nfs = self.nfs_view();
        if self.sent_nfs.as_ref() != Some(&nfs) {
            match data_path.nfs(&nfs) {
                Ok(()) => self.sent_nfs = Some(nfs),
                Err(e) if starting == Some("nfs") => return Err(start_failure("nfs", &e)),
                Err(e) => tracing::warn!("NFS data path reload failed: {e}"),
            }
        }
        Ok(())
    }

    /// Where a dataset's data lives on disk: `mnt/<name>` for filesystems, the sparse
    /// file `zvol/<name>` for volumes.
    pub(crate) fn backing_path(&self, name: &str) -> Option<PathBuf> {
        let dir = self.data_dir.as_ref()?;
        let kind = if self.datasets.get(name).is_some_and(Dataset::is_volume) {
            "zvol"
        } else {
            "mnt"
        };
        Some(dir.join(kind).join(name))
    }

    fn make_backing(&self, name: &str) -> Result<(), String> {
        let (Some(path), Some(dataset)) = (self.backing_path(name), self.datasets.get(name)) else {
            return Ok(());
        };
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        match dataset.volsize() {
            Some(size) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(io)?;
                // Sparse: set_len allocates nothing.
                file.set_len(size).map_err(io)
            }
            None => std::fs::create_dir_all(&path).map_err(io),
        }
    }

    fn remove_backing(&self, name: &str) {
        if let Some(path) = self.backing_path(name) {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }

    /// Seeds data into a filesystem dataset, as a client of its share would.
    pub(crate) fn write_file(
        &mut self,
        dataset: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), String> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(format!("{name:?} is not a plain file name"));
        }
        let path = self.backing_path(dataset);
        let entry = self
            .datasets
            .get_mut(dataset)
            .ok_or_else(|| format!("dataset {dataset} does not exist"))?;
        if entry.is_volume() {
            return Err(format!("{dataset} is a volume, not a filesystem"));
        }
        entry.used += bytes.len() as u64;
        if let Some(dir) = path {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let file = dir.join(name);
            std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        Ok(())
    }
}

/// One table of the middleware's database: rows are the entries the API returns, ids
/// count from 1 and are never reused (the SQLite tables use AUTOINCREMENT).
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: BTreeMap<u64, Value>,
    last_id: u64,
}

impl Table {
    /// Adds a row; its `id` is set here.
    pub(crate) fn insert(&mut self, mut row: Map<String, Value>) -> Value {
        self.last_id += 1;
        row.insert("id".into(), Value::from(self.last_id));
        let row = Value::Object(row);
        self.rows.insert(self.last_id, row.clone());
        row
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Value> {
        self.rows.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Value> {
        self.rows.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Value> {
        self.rows.remove(&id)
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = &Value> {
        self.rows.values()
    }

    pub(crate) fn rows_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.rows.values_mut()
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.rows.keys().copied().collect()
    }

    /// `get_instance`: the row, or `InstanceNotFound` naming the table's model.
    pub(crate) fn instance(&self, id: u64, verbose_name: &str) -> Result<Value, RpcError> {
        self.get(id)
            .cloned()
            .ok_or_else(|| RpcError::not_found(format!("{verbose_name} {id} does not exist")))
    }

    /// `query`: the rows through filters and options.
    pub(crate) fn query(
        &self,
        filters: Option<&Value>,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        crate::query::apply(self.rows().cloned().collect(), filters, options)
    }
}

/// Merges `update` into the object `row` (an update's partial fields).
pub(crate) fn merge(row: &mut Value, update: &Value) {
    if let (Value::Object(row), Value::Object(update)) = (row, update) {
        for (k, v) in update {
            row.insert(k.clone(), v.clone());
        }
    }
}

/// An id field of a row.
pub(crate) fn id_of(row: &Value, field: &str) -> Option<u64> {
    row.get(field).and_then(Value::as_u64)
}

fn start_failure(service: &str, detail: &str) -> RpcError {
    RpcError::call(
        ESERVICESTARTFAILURE,
        format!("The {service} service failed to start: {detail}"),
    )
}
