//! `nfs.config/update` and `sharing.nfs.*`, with the checks of `plugins/nfs.py` clients
//! meet: the path must be a dataset's mountpoint, networks are CIDRs (a bare address
//! becomes /32), hosts must resolve (the lab has no resolver: addresses only), maproot and
//! mapall exclude each other, the mapped users must exist, and no two shares of one path
//! may export to overlapping clients.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::{State, Table, id_of, merge};
use crate::datapath::{NfsExport, NfsView};
use crate::rpc::{FieldError, RpcError};

/// Users and groups that exist on the emulated NAS.
const USERS: &[&str] = &["root", "nobody", "truenas_admin", "www-data"];
const GROUPS: &[&str] = &[
    "root",
    "wheel",
    "nogroup",
    "truenas_admin",
    "www-data",
    "builtin_users",
];

#[derive(Debug)]
pub(crate) struct Nfs {
    pub config: Value,
    pub shares: Table,
}

impl Default for Nfs {
    fn default() -> Self {
        Self {
            config: json!({"id": 1, "servers": null, "allow_nonroot": false, "protocols": ["NFSV3", "NFSV4"],
                "v4_krb": false, "v4_domain": "", "bindip": [], "mountd_port": null, "rpcstatd_port": null,
                "rpclockd_port": null, "mountd_log": false, "statd_lockd_log": false, "v4_krb_enabled": false,
                "userd_manage_gids": false, "keytab_has_nfs_spn": false, "managed_nfsd": true, "rdma": false}),
            shares: Table::default(),
        }
    }
}

impl Nfs {
    /// The attachment delegate of a deleted filesystem: its shares, and those below it.
    pub(crate) fn detach_path(&mut self, mountpoint: &str) {
        let below = format!("{mountpoint}/");
        let doomed: Vec<u64> = self
            .shares
            .rows()
            .filter(|s| {
                s["path"]
                    .as_str()
                    .is_some_and(|p| p == mountpoint || p.starts_with(&below))
            })
            .filter_map(|s| id_of(s, "id"))
            .collect();
        for id in doomed {
            self.shares.remove(id);
        }
    }
}

/// `10.0.0.0/24` stays, `10.0.0.5` becomes `10.0.0.5/32`; None when it is no network.
fn normalize_network(text: &str) -> Option<String> {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then(|| format!("{ip}/{prefix}"))
}

impl State {
    pub(crate) fn nfs_update(&mut self, data: &Value) -> Result<Value, RpcError> {
        if data
            .get("protocols")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            return Err(RpcError::field(
                "nfs_update.protocols",
                "Must specify at least one value",
            ));
        }
        merge(&mut self.nfs.config, data);
        Ok(self.nfs.config.clone())
    }

    fn check_share(
        &self,
        schema: &str,
        row: &mut Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let path = row
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let dataset = path
            .strip_prefix("/mnt/")
            .filter(|d| self.datasets.get(*d).is_some_and(|ds| !ds.is_volume()));
        if dataset.is_none() {
            list.push(FieldError::new(
                format!("{schema}.path"),
                "Path does not exist or is not a dataset mountpoint",
            ));
        }
        let mut networks = Vec::new();
        for (i, n) in row
            .get("networks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            match n.as_str().and_then(normalize_network) {
                Some(net) => networks.push(Value::String(net)),
                None => list.push(FieldError::new(
                    format!("{schema}.networks.{i}"),
                    format!("Invalid network: {n}"),
                )),
            }
        }
        row.insert("networks".into(), Value::Array(networks.clone()));
        let hosts: Vec<String> = row
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        for (i, host) in hosts.iter().enumerate() {
            if host.contains([' ', '"', '\'']) {
                list.push(FieldError::new(
                    format!("{schema}.hosts.{i}"),
                    "Cannot contain spaces or quotes",
                ));
            } else if host.parse::<IpAddr>().is_err() {
                list.push(FieldError::new(
                    format!("{schema}.hosts.{i}"),
                    format!("Unable to resolve host {host}"),
                ));
            }
        }
        let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
        if text("maproot_user").is_some() && text("mapall_user").is_some() {
            list.push(FieldError::new(
                format!("{schema}.mapall_user"),
                "maproot_user disqualifies mapall_user",
            ));
        }
        for kind in ["maproot", "mapall"] {
            if let Some(user) = text(&format!("{kind}_user"))
                && !USERS.contains(&user.as_str())
            {
                list.push(FieldError::new(
                    format!("{schema}.{kind}_user"),
                    format!("User not found: {user}"),
                ));
            }
            if let Some(group) = text(&format!("{kind}_group")) {
                if !GROUPS.contains(&group.as_str()) {
                    list.push(FieldError::new(
                        format!("{schema}.{kind}_group"),
                        format!("Group not found: {group}"),
                    ));
                } else if text(&format!("{kind}_user")).is_none() {
                    list.push(FieldError::new(
                        format!("{schema}.{kind}_group"),
                        format!("This field requires {kind} user"),
                    ));
                }
            }
        }
        let v4 = self.nfs.config["protocols"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "NFSV4"));
        if !v4
            && row
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|x| x != "SYS"))
        {
            list.push(FieldError::new(
                format!("{schema}.security"),
                "The following security flavor(s) require NFSv4 to be enabled: KRB5, KRB5I, KRB5P.",
            ));
        }
        // Everybody (no networks, no hosts) overlaps everything.
        let everybody = networks.is_empty() && hosts.is_empty();
        for other in self
            .nfs
            .shares
            .rows()
            .filter(|s| id_of(s, "id") != own_id && s["path"] == path.as_str())
        {
            let other_nets: Vec<&Value> =
                other["networks"].as_array().into_iter().flatten().collect();
            let other_hosts: Vec<&Value> =
                other["hosts"].as_array().into_iter().flatten().collect();
            let other_everybody = other_nets.is_empty() && other_hosts.is_empty();
            let shared = networks
                .iter()
                .find(|n| other_nets.contains(n))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    hosts
                        .iter()
                        .find(|h| other_hosts.iter().any(|o| o.as_str() == Some(h.as_str())))
                        .cloned()
                });
            if everybody || other_everybody || shared.is_some() {
                let whom = shared.unwrap_or_else(|| "0.0.0.0/0".to_string());
                list.push(FieldError::new(
                    format!("{schema}.networks"),
                    format!("ERROR - Another NFS share already exports {path} for network {whom}"),
                ));
                break;
            }
        }
        if list.is_empty() {
            Ok(())
        } else {
            Err(RpcError::Validation(list))
        }
    }

    pub(crate) fn share_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let mut row =
            json!({"aliases": [], "comment": "", "networks": [], "hosts": [], "ro": false,
            "maproot_user": null, "maproot_group": null, "mapall_user": null, "mapall_group": null,
            "security": [], "enabled": true, "expose_snapshots": false})
            .as_object()
            .cloned()
            .unwrap_or_default();
        row.extend(data.as_object().cloned().unwrap_or_default());
        self.check_share("sharingnfs_create", &mut row, None)?;
        row.insert("locked".into(), json!(false));
        Ok(self.nfs.shares.insert(row))
    }

    pub(crate) fn share_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self.nfs.shares.instance(id, "SharingNFS")?;
        merge(&mut row, data);
        let mut fields = row.as_object().cloned().unwrap_or_default();
        self.check_share("sharingnfs_update", &mut fields, Some(id))?;
        let row = Value::Object(fields);
        if let Some(stored) = self.nfs.shares.get_mut(id) {
            *stored = row.clone();
        }
        Ok(row)
    }

    /// What NFS clients should see now.
    pub(crate) fn nfs_view(&self) -> NfsView {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        NfsView {
            running: self.running("nfs"),
            protocols: strings(&self.nfs.config["protocols"]),
            exports: self
                .nfs
                .shares
                .rows()
                .filter(|s| s["enabled"] != false)
                .map(|s| {
                    let path = s["path"].as_str().unwrap_or_default().to_string();
                    NfsExport {
                        id: id_of(s, "id").unwrap_or_default(),
                        directory: path
                            .strip_prefix("/mnt/")
                            .and_then(|d| self.backing_path(d)),
                        path,
                        networks: strings(&s["networks"]),
                        hosts: strings(&s["hosts"]),
                        read_only: s["ro"] == true,
                        maproot_user: s["maproot_user"].as_str().map(str::to_string),
                        mapall_user: s["mapall_user"].as_str().map(str::to_string),
                    }
                })
                .collect(),
        }
    }
}
