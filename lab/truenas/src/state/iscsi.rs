//! `iscsi.*`: global settings, portals, initiator groups, CHAP accounts, targets, extents
//! and target-extent mappings, with the checks of `plugins/iscsi_/*.py` that clients trip
//! over (target names, "Portal not found in database", LUN and extent reuse). Portals'
//! `tag`s are their position (renumbered 1..N after a delete); targets reference portal
//! `id`s and CHAP `tag`s.

use std::net::IpAddr;

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

fn object(data: &Value) -> Map<String, Value> {
    data.as_object().cloned().unwrap_or_default()
}

fn with_defaults(data: &Value, defaults: Value) -> Map<String, Value> {
    let mut row = defaults.as_object().cloned().unwrap_or_default();
    row.extend(object(data));
    row
}

fn errors(list: Vec<FieldError>) -> Result<(), RpcError> {
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

impl State {
    pub(crate) fn iscsi_global_update(&mut self, data: &Value) -> Result<Value, RpcError> {
        let mut list = Vec::new();
        for field in ["alua", "iser"] {
            if data.get(field) == Some(&Value::Bool(true)) {
                list.push(FieldError::new(
                    format!("iscsi_update.{field}"),
                    "This feature is only available on TrueNAS Enterprise",
                ));
            }
        }
        errors(list)?;
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

    fn check_portal(
        &self,
        schema: &str,
        data: &Value,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let choices = self.listen_ip_choices();
        for (i, listen) in data
            .get("listen")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ip = listen.get("ip").and_then(Value::as_str).unwrap_or_default();
            let attr = format!("{schema}.listen.{i}.ip");
            if choices.get(ip).is_none() {
                list.push(FieldError::new(
                    attr,
                    format!("IP {ip} not found in listen IP choices"),
                ));
                continue;
            }
            let taken = self.iscsi.portals.rows().any(|p| {
                id_of(p, "id") != own_id
                    && p["listen"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|x| x["ip"] == ip))
            });
            if taken {
                list.push(FieldError::new(attr, "IP is already in use."));
            }
        }
        errors(list)
    }

    pub(crate) fn portal_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        self.check_portal("iscsi_portal_create", data, None)?;
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
            .ok_or_else(|| RpcError::not_found(format!("iSCSIPortal {id} does not exist")))
    }

    pub(crate) fn portal_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        self.portal_get(id)?;
        self.check_portal("iscsi_portal_update", data, Some(id))?;
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

    fn check_auth(
        &self,
        schema: &str,
        row: &Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let text = |k: &str| {
            row.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (secret, peeruser, peersecret) = (text("secret"), text("peeruser"), text("peersecret"));
        let length_ok = |s: &str| (12..=16).contains(&s.chars().count());
        if !length_ok(&secret) {
            list.push(FieldError::new(
                format!("{schema}.secret"),
                "Secret must be between 12 and 16 characters.",
            ));
        }
        if !peeruser.is_empty() {
            if !length_ok(&peersecret) {
                list.push(FieldError::new(
                    format!("{schema}.peersecret"),
                    "Secret must be between 12 and 16 characters.",
                ));
            } else if peersecret == secret {
                list.push(FieldError::new(
                    format!("{schema}.peersecret"),
                    "The peer secret cannot be the same as user secret.",
                ));
            }
        } else if !peersecret.is_empty() {
            list.push(FieldError::new(
                format!("{schema}.peersecret"),
                "The peer user is required if you set a peer secret.",
            ));
        }
        let tag = row.get("tag");
        if self.iscsi.auths.rows().any(|a| {
            id_of(a, "id") != own_id && a.get("tag") == tag && a.get("user") == row.get("user")
        }) {
            list.push(FieldError::new(
                format!("{schema}.user"),
                "This user already exists for this group tag.",
            ));
        }
        errors(list)
    }

    pub(crate) fn auth_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let row = with_defaults(
            data,
            json!({"peeruser": "", "peersecret": "", "discovery_auth": "NONE"}),
        );
        self.check_auth("iscsi_auth_create", &row, None)?;
        Ok(self.iscsi.auths.insert(row))
    }

    pub(crate) fn auth_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self.iscsi.auths.instance(id, "iSCSITargetAuthCredential")?;
        merge(&mut row, data);
        self.check_auth("iscsi_auth_update", &object(&row), Some(id))?;
        if let Some(stored) = self.iscsi.auths.get_mut(id) {
            *stored = row.clone();
        }
        Ok(row)
    }

    fn check_target(
        &self,
        schema: &str,
        row: &Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let name = row.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c))
        {
            list.push(FieldError::new(format!("{schema}.name"), "Lowercase alphanumeric characters plus dot (.), dash (-), and colon (:) are allowed."));
        } else if name.len() > 120 {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Name cannot exceed 120 characters.",
            ));
        } else if self
            .iscsi
            .targets
            .rows()
            .any(|t| id_of(t, "id") != own_id && t["name"] == name)
        {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Target with this name already exists",
            ));
        }
        if let Some(alias) = row.get("alias").and_then(Value::as_str) {
            if alias == "target" {
                list.push(FieldError::new(
                    format!("{schema}.alias"),
                    "target is a reserved word",
                ));
            } else if alias.contains('"') {
                list.push(FieldError::new(
                    format!("{schema}.alias"),
                    "Double quotes are not allowed",
                ));
            } else if self
                .iscsi
                .targets
                .rows()
                .any(|t| id_of(t, "id") != own_id && t["alias"] == alias)
            {
                list.push(FieldError::new(
                    format!("{schema}.alias"),
                    "Alias already exists",
                ));
            }
        }
        if matches!(row.get("mode").and_then(Value::as_str), Some("FC" | "BOTH")) {
            list.push(FieldError::new(
                format!("{schema}.mode"),
                "Fibre Channel is not licensed on this system",
            ));
        }
        let mut portals_seen = Vec::new();
        for (i, group) in row
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let attr = |f: &str| format!("{schema}.groups.{i}.{f}");
            let portal = id_of(group, "portal").unwrap_or_default();
            if self.iscsi.portals.get(portal).is_none() {
                list.push(FieldError::new(
                    attr("portal"),
                    format!("{portal} Portal not found in database"),
                ));
            } else if portals_seen.contains(&portal) {
                list.push(FieldError::new(
                    attr("portal"),
                    format!("Portal {portal} cannot be duplicated on a target"),
                ));
            }
            portals_seen.push(portal);
            if let Some(initiator) = id_of(group, "initiator")
                && self.iscsi.initiators.get(initiator).is_none()
            {
                list.push(FieldError::new(
                    attr("initiator"),
                    format!("{initiator} Initiator not found in database"),
                ));
            }
            let method = group
                .get("authmethod")
                .and_then(Value::as_str)
                .unwrap_or("NONE");
            match group.get("auth").and_then(Value::as_u64) {
                None if method != "NONE" => list.push(FieldError::new(
                    attr("auth"),
                    "Authentication group is required for CHAP and CHAP Mutual",
                )),
                Some(tag) if !self.iscsi.auths.rows().any(|a| a["tag"] == tag) => {
                    list.push(FieldError::new(
                        attr("auth"),
                        format!("Authentication group {tag} not found"),
                    ))
                }
                Some(tag)
                    if method == "CHAP_MUTUAL"
                        && !self.iscsi.auths.rows().any(|a| {
                            a["tag"] == tag && a["peeruser"].as_str().is_some_and(|p| !p.is_empty())
                        }) =>
                {
                    list.push(FieldError::new(
                        attr("auth"),
                        format!("Authentication group {tag} does not support CHAP Mutual"),
                    ));
                }
                _ => {}
            }
        }
        for (i, network) in row
            .get("auth_networks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let text = network.as_str().unwrap_or_default();
            let ip = text.split('/').next().unwrap_or_default();
            let prefix_ok = text
                .split('/')
                .nth(1)
                .is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= 128));
            if ip.parse::<IpAddr>().is_err() || !prefix_ok {
                list.push(FieldError::new(
                    format!("{schema}.auth_networks.{i}"),
                    format!("Invalid IP or network: {text}"),
                ));
            }
        }
        errors(list)
    }

    pub(crate) fn target_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let mut row = with_defaults(
            data,
            json!({"alias": null, "mode": "ISCSI", "groups": [], "auth_networks": [], "iscsi_parameters": null}),
        );
        self.check_target("iscsi_target_create", &row, None)?;
        for group in row
            .get_mut("groups")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let defaults = json!({"initiator": null, "authmethod": "NONE", "auth": null});
            let mut full = defaults;
            merge(&mut full, group);
            *group = full;
        }
        let mut created = self.iscsi.targets.insert(row);
        // The relative target id SCST uses; the middleware allocates it from 1 like the id.
        let id = id_of(&created, "id").unwrap_or_default();
        created["rel_tgt_id"] = json!(id);
        if let Some(stored) = self.iscsi.targets.get_mut(id) {
            *stored = created.clone();
        }
        Ok(created)
    }

    pub(crate) fn target_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self.iscsi.targets.instance(id, "iSCSITarget")?;
        merge(&mut row, data);
        self.check_target("iscsi_target_update", &object(&row), Some(id))?;
        if let Some(stored) = self.iscsi.targets.get_mut(id) {
            *stored = row.clone();
        }
        Ok(row)
    }

    pub(crate) fn target_delete(
        &mut self,
        id: u64,
        delete_extents: bool,
    ) -> Result<Value, RpcError> {
        self.iscsi.targets.instance(id, "iSCSITarget")?;
        let mappings: Vec<(u64, u64)> = self
            .iscsi
            .targetextents
            .rows()
            .filter(|m| id_of(m, "target") == Some(id))
            .filter_map(|m| Some((id_of(m, "id")?, id_of(m, "extent")?)))
            .collect();
        for (mapping, extent) in mappings {
            self.iscsi.targetextents.remove(mapping);
            if delete_extents {
                self.iscsi.extents.remove(extent);
            }
        }
        self.iscsi.targets.remove(id);
        Ok(Value::Bool(true))
    }

    fn check_extent(
        &self,
        schema: &str,
        row: &Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let name = row.get("name").and_then(Value::as_str).unwrap_or_default();
        let flat = |s: &str| s.replace(['.', ':'], "_");
        if self.iscsi.extents.rows().any(|e| {
            id_of(e, "id") != own_id && e["name"].as_str().is_some_and(|n| flat(n) == flat(name))
        }) {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Extent name must be unique",
            ));
        }
        if name.len() > 64 {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Extent name must be at most 64 characters",
            ));
        }
        match row.get("type").and_then(Value::as_str) {
            Some("FILE") => {
                let path = row.get("path").and_then(Value::as_str).unwrap_or_default();
                if !path.starts_with("/mnt/") {
                    list.push(FieldError::new(
                        format!("{schema}.path"),
                        "Path must reside within a pool",
                    ));
                }
            }
            _ => {
                let disk = row.get("disk").and_then(Value::as_str).unwrap_or_default();
                match disk.strip_prefix("zvol/") {
                    None => list.push(FieldError::new(
                        format!("{schema}.disk"),
                        "Disk name must start with \"zvol/\"",
                    )),
                    Some(zvol)
                        if !self
                            .datasets
                            .get(zvol)
                            .is_some_and(super::Dataset::is_volume) =>
                    {
                        list.push(FieldError::new(
                            format!("{schema}.disk"),
                            format!("Device /dev/zvol/{zvol} for volume {zvol} does not exist"),
                        ));
                    }
                    Some(_) => {
                        if let Some(other) = self
                            .iscsi
                            .extents
                            .rows()
                            .find(|e| id_of(e, "id") != own_id && e["disk"] == disk)
                        {
                            list.push(FieldError::new(
                                format!("{schema}.disk"),
                                format!(
                                    "Disk currently in use by extent {}",
                                    other["name"].as_str().unwrap_or_default()
                                ),
                            ));
                        }
                    }
                }
                if disk.contains('@') && row.get("ro") != Some(&Value::Bool(true)) {
                    list.push(FieldError::new(
                        format!("{schema}.ro"),
                        "Must be set when disk is a ZFS Snapshot",
                    ));
                }
            }
        }
        errors(list)
    }

    pub(crate) fn extent_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let mut row = with_defaults(
            data,
            json!({"type": "DISK", "disk": null, "serial": null, "path": null, "filesize": "0",
            "blocksize": 512, "pblocksize": false, "avail_threshold": null, "comment": "", "insecure_tpc": true, "xen": false,
            "rpm": "SSD", "ro": false, "enabled": true, "product_id": null}),
        );
        self.check_extent("iscsi_extent_create", &row, None)?;
        let seq = self.iscsi.extents.ids().last().copied().unwrap_or(0) + 1;
        if row.get("serial").is_none_or(Value::is_null) {
            row.insert(
                "serial".into(),
                json!(format!("{:015x}", 0x0e5f_1a2b_0000u64 + seq)),
            );
        }
        row.insert(
            "naa".into(),
            json!(format!(
                "0x6589cfc000000{:019x}",
                0x1f2e_3d4cu64 * 1000 + seq
            )),
        );
        row.insert("vendor".into(), json!("TrueNAS"));
        row.insert("locked".into(), json!(false));
        if row.get("type").and_then(Value::as_str) != Some("FILE") {
            let disk = row.get("disk").cloned().unwrap_or(Value::Null);
            row.insert("path".into(), disk);
        }
        Ok(self.iscsi.extents.insert(row))
    }

    pub(crate) fn extent_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self.iscsi.extents.instance(id, "iSCSITargetExtent")?;
        merge(&mut row, data);
        self.check_extent("iscsi_extent_update", &object(&row), Some(id))?;
        if let Some(stored) = self.iscsi.extents.get_mut(id) {
            *stored = row.clone();
        }
        Ok(row)
    }

    pub(crate) fn extent_delete(&mut self, id: u64) -> Result<Value, RpcError> {
        self.iscsi.extents.instance(id, "iSCSITargetExtent")?;
        let mappings: Vec<u64> = self
            .iscsi
            .targetextents
            .rows()
            .filter(|m| id_of(m, "extent") == Some(id))
            .filter_map(|m| id_of(m, "id"))
            .collect();
        for mapping in mappings {
            self.iscsi.targetextents.remove(mapping);
        }
        self.iscsi.extents.remove(id);
        Ok(Value::Bool(true))
    }

    fn check_mapping(
        &self,
        schema: &str,
        row: &Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let target = row
            .get("target")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        let extent = row
            .get("extent")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        if self.iscsi.targets.get(target).is_none() {
            list.push(FieldError::new(
                format!("{schema}.target"),
                format!("{target} Target not found in database"),
            ));
        }
        if self.iscsi.extents.get(extent).is_none() {
            list.push(FieldError::new(
                format!("{schema}.extent"),
                format!("{extent} Extent not found in database"),
            ));
        }
        let others = || {
            self.iscsi
                .targetextents
                .rows()
                .filter(|m| id_of(m, "id") != own_id)
        };
        if let Some(lunid) = row.get("lunid").and_then(Value::as_u64) {
            if lunid > 16382 {
                list.push(FieldError::new(
                    format!("{schema}.lunid"),
                    "LUN ID must be between 0 and 16382",
                ));
            } else if others()
                .any(|m| id_of(m, "target") == Some(target) && id_of(m, "lunid") == Some(lunid))
            {
                list.push(FieldError::new(
                    format!("{schema}.lunid"),
                    "LUN ID is already being used for this target.",
                ));
            }
        }
        if others().any(|m| id_of(m, "extent") == Some(extent)) {
            list.push(FieldError::new(
                format!("{schema}.extent"),
                "Extent is already in use.",
            ));
        }
        errors(list)
    }

    pub(crate) fn targetextent_create(&mut self, data: &Value) -> Result<Value, RpcError> {
        let mut row = with_defaults(data, json!({"lunid": null}));
        self.check_mapping("iscsi_target_to_extent_create", &row, None)?;
        if row.get("lunid").is_none_or(Value::is_null) {
            let target = row.get("target").and_then(Value::as_u64);
            let used: Vec<u64> = self
                .iscsi
                .targetextents
                .rows()
                .filter(|m| id_of(m, "target") == target)
                .filter_map(|m| id_of(m, "lunid"))
                .collect();
            let free = (0u64..=16382).find(|l| !used.contains(l)).unwrap_or(0);
            row.insert("lunid".into(), json!(free));
        }
        Ok(self.iscsi.targetextents.insert(row))
    }

    pub(crate) fn targetextent_update(&mut self, id: u64, data: &Value) -> Result<Value, RpcError> {
        let mut row = self
            .iscsi
            .targetextents
            .instance(id, "iSCSITargetToExtent")?;
        merge(&mut row, data);
        self.check_mapping("iscsi_target_to_extent_update", &object(&row), Some(id))?;
        if let Some(stored) = self.iscsi.targetextents.get_mut(id) {
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
