//! `iscsi.*`: global settings, portals, initiator groups and CHAP accounts (targets,
//! extents and their mappings are in `targets.rs`), with the checks of
//! `plugins/iscsi_/*.py`, and the whole configuration as the data path gets it. Portals'
//! `tag`s are their position (renumbered 1..N after a delete); targets reference portal
//! `id`s and CHAP `tag`s.

use serde_json::{Map, Value, json};

use super::{State, Table, id_of, merge};
use crate::datapath::{IscsiChap, IscsiLun, IscsiTarget, IscsiView};
use crate::rpc::{FieldError, RpcError};

pub(crate) const BASENAME: &str = "iqn.2005-10.org.freenas.ctl";

#[derive(Debug)]
pub(crate) struct Iscsi {
    pub global: Value,
    pub portals: Table,
    pub initiators: Table,
    pub auths: Table,
    pub targets: Table,
    pub extents: Table,
    pub targetextents: Table,
}

impl Default for Iscsi {
    fn default() -> Self {
        Self {
            global: json!({"id": 1, "basename": BASENAME, "isns_servers": [], "listen_port": 3260,
                "pool_avail_threshold": null, "alua": false, "iser": false}),
            portals: Table::default(),
            initiators: Table::default(),
            auths: Table::default(),
            targets: Table::default(),
            extents: Table::default(),
            targetextents: Table::default(),
        }
    }
}

pub(super) fn object(data: &Value) -> Map<String, Value> {
    data.as_object().cloned().unwrap_or_default()
}

pub(super) fn with_defaults(data: &Value, defaults: Value) -> Map<String, Value> {
    let mut row = defaults.as_object().cloned().unwrap_or_default();
    row.extend(object(data));
    row
}

pub(super) fn errors(list: Vec<FieldError>) -> Result<(), RpcError> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(RpcError::Validation(list))
    }
}

impl Iscsi {
    /// Portals with `tag` = position and each listen entry's port = the global port.
    pub(crate) fn portal_rows(&self) -> Vec<Value> {
        let port = self.global["listen_port"].clone();
        self.portals
            .rows()
            .enumerate()
            .map(|(i, row)| {
                let mut row = row.clone();
                row["tag"] = json!(i + 1);
                if let Some(listen) = row.get_mut("listen").and_then(Value::as_array_mut) {
                    for l in listen {
                        l["port"] = port.clone();
                    }
                }
                row
            })
            .collect()
    }

    /// The attachment delegate of a deleted zvol: its extents, their mappings, and any
    /// target they leave without a LUN.
    pub(crate) fn detach_zvol(&mut self, zvol: &str) {
        let disk = format!("zvol/{zvol}");
        let extents: Vec<u64> = self
            .extents
            .rows()
            .filter(|e| e["disk"] == disk.as_str())
            .filter_map(|e| id_of(e, "id"))
            .collect();
        for extent in extents {
            let mappings: Vec<(u64, u64)> = self
                .targetextents
                .rows()
                .filter(|m| id_of(m, "extent") == Some(extent))
                .filter_map(|m| Some((id_of(m, "id")?, id_of(m, "target")?)))
                .collect();
            for (mapping, target) in mappings {
                self.targetextents.remove(mapping);
                if !self
                    .targetextents
                    .rows()
                    .any(|m| id_of(m, "target") == Some(target))
                {
                    self.targets.remove(target);
                }
            }
            self.extents.remove(extent);
        }
    }
}

/// `auth.py` `_validate_secret`.
fn check_secret(secret: &str, field: &str, title: &str, schema: &str, list: &mut Vec<FieldError>) {
    let attr = format!("{schema}.{field}");
    if !(12..=16).contains(&secret.chars().count()) {
        list.push(FieldError::new(
            attr.clone(),
            format!("{title} must be between 12 and 16 characters."),
        ));
    }
    if secret != secret.trim() {
        list.push(FieldError::new(
            attr.clone(),
            format!("{title} contains leading or trailing space."),
        ));
    }
    if secret.contains('#') {
        list.push(FieldError::new(
            attr,
            format!("{title} contains invalid characters: #"),
        ));
    }
}

impl State {
    /// `iscsi.auth.delete`: the last account of a tag cannot go while a target uses the tag.
    pub(crate) fn auth_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        let row = self.iscsi.auths.instance(id, "iSCSITargetAuthCredential")?;
        let tag = row.get("tag").cloned().unwrap_or(Value::Null);
        let last_of_tag = !self
            .iscsi
            .auths
            .rows()
            .any(|a| a.get("tag") == Some(&tag) && id_of(a, "id") != Some(id));
        let users: Vec<String> = self
            .iscsi
            .targets
            .rows()
            .filter(|t| {
                t["groups"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|g| g.get("auth") == Some(&tag)))
            })
            .filter_map(|t| id_of(t, "id").map(|i| i.to_string()))
            .collect();
        if last_of_tag && !users.is_empty() {
            return Err(RpcError::call(
                crate::rpc::EFAULT,
                format!(
                    "Authorized access of {id} is being used by following target(s): {}",
                    users.join(", ")
                ),
            ));
        }
        self.iscsi.auths.remove(id);
        Ok(Value::Bool(true))
    }

    /// `iscsi_global.py` `do_update`: iSER needs RDMA hardware the lab has not; ALUA is
    /// stored (it matters only on licensed HA systems).
    pub(crate) fn iscsi_global_update(&mut self, data: &Value) -> Result<Value, RpcError> {
        if data.get("iser") == Some(&Value::Bool(true)) {
            return Err(RpcError::field(
                "iscsiglobal_update.iser",
                "This platform cannot support iSER or is missing an RDMA capable NIC.",
            ));
        }
        merge(&mut self.iscsi.global, data);
        Ok(self.iscsi.global.clone())
    }

    /// `iscsi.portal.listen_ip_choices`: the wildcard addresses and the NAS's own.
    pub(crate) fn listen_ip_choices(&self) -> Value {
        let mut choices = Map::new();
        for ip in ["0.0.0.0", "::"]
            .into_iter()
            .map(str::to_string)
            .chain(self.host_ips.iter().map(ToString::to_string))
        {
            choices.insert(ip.clone(), Value::String(ip));
        }
        Value::Object(choices)
    }

    /// `portal.py` `__validate`: every address free and configured, errors on `listen`.
    fn check_portal(
        &self,
        schema: &str,
        data: &Value,
        old: Option<&Value>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let attr = format!("{schema}.listen");
        let ips = |v: &Value| -> Vec<String> {
            v.get("listen")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.get("ip").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        let wanted = ips(data);
        if wanted.is_empty() {
            list.push(FieldError::new(
                attr,
                "At least one listen entry is required.",
            ));
            return errors(list);
        }
        let own_id = old.and_then(|o| id_of(o, "id"));
        let old_ips = old.map(ips).unwrap_or_default();
        let new_ips: Vec<&String> = wanted.iter().filter(|ip| !old_ips.contains(ip)).collect();
        let choices = self.listen_ip_choices();
        for ip in &wanted {
            let taken = self
                .iscsi
                .portals
                .rows()
                .any(|p| id_of(p, "id") != own_id && ips(p).contains(ip));
            if taken {
                list.push(FieldError::new(
                    attr.clone(),
                    format!("'{ip}' IP is already in use."),
                ));
            }
            // Only addresses new to the portal must be configured (an old one may be gone).
            if (old.is_none() || new_ips.contains(&ip)) && choices.get(ip.as_str()).is_none() {
                list.push(FieldError::new(
                    attr.clone(),
                    format!("IP {ip} not configured on this system."),
                ));
            }
        }
        errors(list)
    }

    pub(crate) fn portal_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        self.check_portal("iscsiportal_create", data, None)?;
        let row = self
            .iscsi
            .portals
            .insert(with_defaults(data, json!({"comment": ""})));
        self.portal_get(id_of(&row, "id").unwrap_or_default())
    }

    pub(crate) fn portal_get(&self, id: u64) -> Result<Value, RpcError> {
        self.iscsi
            .portal_rows()
            .into_iter()
            .find(|p| id_of(p, "id") == Some(id))
            .ok_or_else(|| RpcError::not_found(format!("ISCSIPortal {id} does not exist")))
    }

    pub(crate) fn portal_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let old = self.portal_get(id)?;
        let mut new = old.clone();
        merge(&mut new, data);
        self.check_portal("iscsiportal_update", &new, Some(&old))?;
        if let Some(row) = self.iscsi.portals.get_mut(id) {
            merge(row, data);
        }
        self.portal_get(id)
    }

    pub(crate) fn portal_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        self.portal_get(id)?;
        self.iscsi.portals.remove(id);
        // The target groups on this portal go with it (foreign key, ON DELETE CASCADE).
        for target in self.iscsi.targets.rows_mut() {
            if let Some(groups) = target.get_mut("groups").and_then(Value::as_array_mut) {
                groups.retain(|g| id_of(g, "portal") != Some(id));
            }
        }
        Ok(Value::Bool(true))
    }

    pub(crate) fn initiator_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        Ok(self.iscsi.initiators.insert(with_defaults(
            data,
            json!({"initiators": [], "comment": ""}),
        )))
    }

    pub(crate) fn initiator_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let row = self.iscsi.initiators.get_mut(id).ok_or_else(|| {
            RpcError::not_found(format!(
                "iSCSITargetAuthorizedInitiator {id} does not exist"
            ))
        })?;
        merge(row, data);
        Ok(row.clone())
    }

    pub(crate) fn initiator_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        self.iscsi
            .initiators
            .instance(id, "iSCSITargetAuthorizedInitiator")?;
        self.iscsi.initiators.remove(id);
        for target in self.iscsi.targets.rows_mut() {
            for group in target
                .get_mut("groups")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if id_of(group, "initiator") == Some(id) {
                    group["initiator"] = Value::Null;
                }
            }
        }
        Ok(Value::Bool(true))
    }

    /// `auth.py` `validate`: secrets of 12–16 characters without `#` or outer spaces, a peer
    /// user and peer secret together and different from the secret.
    fn check_auth(&self, schema: &str, row: &Map<String, Value>) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let text = |k: &str| {
            row.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (secret, peeruser, peersecret) = (text("secret"), text("peeruser"), text("peersecret"));
        if peeruser.is_empty() && !peersecret.is_empty() {
            list.push(FieldError::new(
                format!("{schema}.peersecret"),
                "The peer user is required if you set a peer secret.",
            ));
        }
        check_secret(&secret, "secret", "Secret", schema, &mut list);
        if !peeruser.is_empty() {
            if peersecret.is_empty() {
                list.push(FieldError::new(
                    format!("{schema}.peersecret"),
                    "The peer secret is required if you set a peer user.",
                ));
            } else if peersecret == secret {
                list.push(FieldError::new(
                    format!("{schema}.peersecret"),
                    "The peer secret cannot be the same as user secret.",
                ));
            } else {
                check_secret(&peersecret, "peersecret", "Peer Secret", schema, &mut list);
            }
        }
        errors(list)
    }

    pub(crate) fn auth_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let row = with_defaults(
            data,
            json!({"peeruser": "", "peersecret": "", "discovery_auth": "NONE"}),
        );
        self.check_auth("iscsi_auth_create", &row)?;
        Ok(self.iscsi.auths.insert(row))
    }

    pub(crate) fn auth_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self.iscsi.auths.instance(id, "iSCSITargetAuthCredential")?;
        merge(&mut row, data);
        self.check_auth("iscsi_auth_update", &object(&row))?;
        if let Some(stored) = self.iscsi.auths.get_mut(id) {
            *stored = row.clone();
        }
        Ok(row)
    }

    /// What the initiators should see now.
    pub(crate) fn iscsi_view(&self) -> IscsiView {
        let basename = self.iscsi.global["basename"].as_str().unwrap_or(BASENAME);
        let mut targets = Vec::new();
        for target in self.iscsi.targets.rows() {
            let id = id_of(target, "id").unwrap_or_default();
            let mut luns = Vec::new();
            for mapping in self
                .iscsi
                .targetextents
                .rows()
                .filter(|m| id_of(m, "target") == Some(id))
            {
                let Some(extent) = id_of(mapping, "extent").and_then(|e| self.iscsi.extents.get(e))
                else {
                    continue;
                };
                if extent["enabled"] == false {
                    continue;
                }
                let zvol = extent["disk"]
                    .as_str()
                    .and_then(|d| d.strip_prefix("zvol/"))
                    .unwrap_or_default()
                    .to_string();
                luns.push(IscsiLun {
                    lun: id_of(mapping, "lunid")
                        .and_then(|l| u32::try_from(l).ok())
                        .unwrap_or(0),
                    extent: extent["name"].as_str().unwrap_or_default().to_string(),
                    backing_file: self.backing_path(&zvol),
                    size: self
                        .datasets
                        .get(&zvol)
                        .and_then(super::Dataset::volsize)
                        .unwrap_or(0),
                    blocksize: extent["blocksize"]
                        .as_u64()
                        .and_then(|b| u32::try_from(b).ok())
                        .unwrap_or(512),
                    read_only: extent["ro"] == true,
                    serial: extent["serial"].as_str().unwrap_or_default().to_string(),
                    naa: extent["naa"].as_str().unwrap_or_default().to_string(),
                    zvol,
                });
            }
            luns.sort_by_key(|l| l.lun);
            let groups = target["groups"].as_array().cloned().unwrap_or_default();
            let mut initiators: Vec<String> = Vec::new();
            let mut chap = None;
            for group in &groups {
                if let Some(list) = id_of(group, "initiator")
                    .and_then(|i| self.iscsi.initiators.get(i))
                    .and_then(|g| g["initiators"].as_array())
                {
                    initiators.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
                }
                if group["authmethod"] != "NONE"
                    && let Some(auth) = self.iscsi.auths.rows().find(|a| a["tag"] == group["auth"])
                {
                    let text = |k: &str| {
                        auth[k]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    chap = Some(IscsiChap {
                        user: text("user").unwrap_or_default(),
                        secret: text("secret").unwrap_or_default(),
                        peer_user: text("peeruser")
                            .filter(|_| group["authmethod"] == "CHAP_MUTUAL"),
                        peer_secret: text("peersecret")
                            .filter(|_| group["authmethod"] == "CHAP_MUTUAL"),
                    });
                }
            }
            targets.push(IscsiTarget {
                id,
                iqn: format!("{basename}:{}", target["name"].as_str().unwrap_or_default()),
                alias: target["alias"].as_str().map(str::to_string),
                luns,
                initiators,
                networks: target["auth_networks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                chap,
            });
        }
        IscsiView {
            running: self.running("iscsitarget"),
            listen_port: self.iscsi.global["listen_port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(3260),
            portals: self
                .iscsi
                .portals
                .rows()
                .flat_map(|p| p["listen"].as_array().cloned().unwrap_or_default())
                .filter_map(|l| l["ip"].as_str()?.parse().ok())
                .collect(),
            targets,
        }
    }
}
