//! iSCSI targets, extents and their target-extent mappings (`plugins/iscsi_/targets.py`,
//! `extents.py`, `target_to_extent.py`): target names and aliases, portal / initiator /
//! CHAP references, extents only on existing zvols (one extent per zvol), one LUN id per
//! target and one target per extent.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::iscsi::{errors, object, with_defaults};
use super::{State, id_of, merge};
use crate::rpc::{FieldError, RpcError};

/// pydantic's `IPvAnyNetwork` (strict `ip_network`): an address or `address/prefix` with no
/// host bits set (`10.0.0.0/24`, not `10.0.0.5/24`).
pub(super) fn is_strict_network(text: &str) -> bool {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix.map(str::parse::<u32>) {
        None => bits,
        Some(Ok(p)) if p <= bits => p,
        Some(_) => return false,
    };
    let host_bits = bits - prefix;
    let value: u128 = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    host_bits == 0 || value & ((1u128 << host_bits) - 1) == 0
}

impl State {
    /// `iscsi.target.validate_name`: the error a name would get, or null.
    pub(crate) fn target_name_error(&self, name: &str, existing_id: Option<u64>) -> Value {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
        if !valid {
            return json!(
                "Only lowercase alphanumeric characters plus dot (.), dash (-), and colon (:) are allowed."
            );
        }
        if self
            .iscsi
            .targets
            .rows()
            .any(|t| id_of(t, "id") != existing_id && t["name"] == name)
        {
            return json!("Target with this name already exists");
        }
        Value::Null
    }

    fn check_target(
        &self,
        schema: &str,
        row: &Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut list = Vec::new();
        let name = row.get("name").and_then(Value::as_str).unwrap_or_default();
        // `validate_name`: RE_TARGET_NAME, then uniqueness.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c))
        {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Only lowercase alphanumeric characters plus dot (.), dash (-), and colon (:) are allowed.",
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
                "Fibre Channel not enabled",
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
            // As `targets.py`: a tag is looked up only for CHAP_MUTUAL.
            match group.get("auth").and_then(Value::as_u64) {
                None if method != "NONE" => list.push(FieldError::new(
                    attr("auth"),
                    "Authentication group is required for CHAP and CHAP Mutual",
                )),
                Some(tag) if method == "CHAP_MUTUAL" => {
                    match self.iscsi.auths.rows().find(|a| a["tag"] == tag) {
                        None => list.push(
                            FieldError::new(attr("auth"), "Authentication group not found")
                                .with_errno(crate::rpc::ENOENT),
                        ),
                        Some(auth) if auth["peeruser"].as_str().is_none_or(str::is_empty) => {
                            list.push(FieldError::new(
                                attr("auth"),
                                format!("Authentication group {tag} does not support CHAP Mutual"),
                            ));
                        }
                        Some(_) => {}
                    }
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
            if !is_strict_network(text) {
                list.push(FieldError::new(
                    format!("{schema}.auth_networks.{i}"),
                    format!("Auth network \"{text}\" is not a valid IPv4 or IPv6 network"),
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
        // `clean_name`: the exact name first, then the name as SCST flattens it.
        let flat = |s: &str| s.replace('.', "_").replace('/', "-");
        let others: Vec<&str> = self
            .iscsi
            .extents
            .rows()
            .filter(|e| id_of(e, "id") != own_id)
            .filter_map(|e| e["name"].as_str())
            .collect();
        if name.contains('"') {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Double quotes are not allowed",
            ));
        }
        if others.contains(&name) {
            list.push(FieldError::new(
                format!("{schema}.name"),
                "Extent name must be unique",
            ));
        } else if let Some(clash) = others.iter().find(|n| flat(n) == flat(name)) {
            list.push(FieldError::new(
                format!("{schema}.name"),
                format!("Extent name must be unique when flattened ({clash})"),
            ));
        }
        match row.get("type").and_then(Value::as_str) {
            Some("FILE") => {
                if row
                    .get("path")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    list.push(FieldError::new(
                        format!("{schema}.path"),
                        "This field is required",
                    ));
                }
            }
            _ => {
                let disk = row.get("disk").and_then(Value::as_str).unwrap_or_default();
                if disk.is_empty() {
                    list.push(FieldError::new(
                        format!("{schema}.disk"),
                        "This field is required",
                    ));
                    return errors(list);
                }
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
                            format!("Device '/dev/zvol/{zvol}' for volume '{zvol}' does not exist"),
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
            "rpm": "SSD", "ro": false, "enabled": true, "product_id": "iSCSI Disk"}),
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
        if row.get("product_id").is_none_or(Value::is_null) {
            row.insert("product_id".into(), json!("iSCSI Disk"));
        }
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
        // The middleware checks neither reference; the database's foreign keys refuse them.
        if self.iscsi.targets.get(target).is_none() || self.iscsi.extents.get(extent).is_none() {
            return Err(RpcError::Exception("FOREIGN KEY constraint failed".into()));
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
                    "LUN ID must be a positive integer and lower than 16382",
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
}
