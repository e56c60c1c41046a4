//! `nfs.config/update` and `sharing.nfs.*`, with the checks of `plugins/nfs.py` clients
//! meet: the path must be a dataset's mountpoint, networks are CIDRs (a bare address
//! becomes /32), hosts must resolve (the lab has no resolver: addresses only), maproot and
//! mapall exclude each other, the mapped users must exist, and no two shares of one path
//! may export to overlapping clients.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use super::{POOL, State, Table, id_of, merge};
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

/// An IP network as Python's `ip_network(text, strict=False)` reads it: host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    v6: bool,
    bits: u128,
    prefix: u32,
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (
                ip.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u32>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let (v6, width, value) = match ip {
            IpAddr::V4(v4) => (false, 32, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (true, 128, u128::from(v6)),
        };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        Some(Self {
            v6,
            bits: value & Self::mask(width, prefix),
            prefix,
        })
    }

    fn mask(width: u32, prefix: u32) -> u128 {
        let host = width - prefix;
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1)
        }
    }

    fn width(self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    /// `ip_network.overlaps`: one contains the other (never across families).
    fn overlaps(self, other: Self) -> bool {
        if self.v6 != other.v6 {
            return false;
        }
        let prefix = self.prefix.min(other.prefix);
        let mask = Self::mask(self.width(), prefix);
        self.bits & mask == other.bits & mask
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", std::net::Ipv6Addr::from(self.bits), self.prefix)
        } else {
            let v4 = u32::try_from(self.bits).unwrap_or_default();
            write!(f, "{}/{}", std::net::Ipv4Addr::from(v4), self.prefix)
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// `confirm_unique`.
fn confirm_unique(schema: &str, field: &str, items: &[String], list: &mut Vec<FieldError>) {
    let mut seen = Vec::new();
    let mut twice = Vec::new();
    for item in items {
        if seen.contains(item) {
            twice.push(item.as_str());
        }
        seen.push(item.clone());
    }
    if !twice.is_empty() {
        list.push(FieldError::new(
            format!("{schema}.{field}"),
            format!(
                "Entries must be unique, the following are not: {}",
                twice.join(", ")
            ),
        ));
    }
}

fn check(list: Vec<FieldError>) -> Result<(), RpcError> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(RpcError::Validation(list))
    }
}

impl State {
    /// `NFSService.do_update`: the checks that do not need Kerberos, HA or RDMA hardware.
    pub(crate) fn nfs_update(&mut self, data: &Value) -> Result<Value, RpcError> {
        if data
            .get("protocols")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            return Err(RpcError::field(
                "nfs_update.protocols",
                "Must specify at least one value (\"NFSV3\", \"NFSV4\") in the \"protocols\" list.",
            ));
        }
        let mut new = self.nfs.config.clone();
        merge(&mut new, data);
        let mut list = Vec::new();
        let choices: Vec<String> = self.host_ips.iter().map(ToString::to_string).collect();
        for (i, ip) in strings(new.get("bindip")).iter().enumerate() {
            if !choices.contains(ip) {
                list.push(FieldError::new(
                    format!("nfs_update.bindip.{i}"),
                    format!("Cannot use {ip}. Please provide a valid ip address."),
                ));
            }
        }
        let v4 = strings(new.get("protocols")).iter().any(|p| p == "NFSV4");
        if !v4 && new["v4_domain"].as_str().is_some_and(|d| !d.is_empty()) {
            list.push(FieldError::new(
                "nfs_update.v4_domain",
                "This option does not apply to NFSv3",
            ));
        }
        if new["rdma"] == true {
            list.push(FieldError::new(
                "nfs_update.rdma",
                "This platform cannot support NFS over RDMA or is missing an RDMA capable NIC.",
            ));
        }
        check(list)?;
        self.nfs.config = new;
        Ok(self.nfs.config.clone())
    }

    /// `SharingNFSService.validate`, stage by stage as the middleware stops between them.
    fn check_share(
        &self,
        schema: &str,
        row: &mut Map<String, Value>,
        own_id: Option<u64>,
    ) -> Result<(), RpcError> {
        // Sanitize: unique entries, networks as CIDR (host bits cleared), hosts without
        // spaces or quotes, no "everybody" spelled out.
        let mut list = Vec::new();
        let networks_in = strings(row.get("networks"));
        let hosts = strings(row.get("hosts"));
        confirm_unique(schema, "networks", &networks_in, &mut list);
        confirm_unique(schema, "hosts", &hosts, &mut list);
        let parsed: Vec<Option<Network>> = networks_in.iter().map(|n| Network::parse(n)).collect();
        let invalid: Vec<&str> = networks_in
            .iter()
            .zip(&parsed)
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        let networks: Vec<Network> = parsed.iter().flatten().copied().collect();
        if !invalid.is_empty() {
            list.push(FieldError::new(
                format!("{schema}.networks"),
                format!(
                    "The following do not appear to be valid IPv4 or IPv6 networks: {}",
                    invalid.join(", ")
                ),
            ));
        } else if let Some(last) = networks_in
            .last()
            .filter(|_| networks.iter().any(|n| n.bits == 0))
        {
            list.push(FieldError::new(
                format!("{schema}.networks"),
                format!("Do not use {last} to represent all-networks.  No entry is required to configure 'allow everybody'.  Please remove {last}."),
            ));
        } else {
            row.insert(
                "networks".into(),
                json!(networks.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        let bad_hosts: Vec<&str> = hosts
            .iter()
            .filter(|h| h.contains(|c: char| c.is_whitespace() || c == '"'))
            .map(String::as_str)
            .collect();
        if !bad_hosts.is_empty() {
            list.push(FieldError::new(
                format!("{schema}.hosts"),
                format!("Cannot contain spaces or quotes: {}", bad_hosts.join(", ")),
            ));
        }
        check(std::mem::take(&mut list))?;

        // The path must be inside the pool; overlaps inside the share's own networks.
        let path = row
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let inside_pool =
            path == format!("/mnt/{POOL}") || path.starts_with(&format!("/mnt/{POOL}/"));
        if !inside_pool {
            list.push(FieldError::new(
                format!("{schema}.path"),
                "The path must reside within a pool mount point",
            ));
        }
        let mut overlapped = Vec::new();
        for (a, na) in networks.iter().enumerate() {
            for nb in networks.iter().skip(a + 1) {
                if na.overlaps(*nb) {
                    overlapped.push(format!("('{na}', '{nb}')"));
                }
            }
        }
        if !overlapped.is_empty() {
            list.push(FieldError::new(
                format!("{schema}.networks"),
                format!("ERROR - Overlapped subnets: [{}]", overlapped.join(", ")),
            ));
        }
        check(std::mem::take(&mut list))?;

        // `filesystem.stat` of the path: a dataset's mountpoint (or a directory in one).
        let exists = path.strip_prefix("/mnt/").is_some_and(|rel| {
            self.datasets.get(rel).is_some_and(|d| !d.is_volume())
                || self
                    .data_dir
                    .as_ref()
                    .is_some_and(|dir| dir.join("mnt").join(rel).is_dir())
        });
        if !exists {
            return Err(RpcError::call(
                crate::rpc::ENOENT,
                format!("Path {path} not found"),
            ));
        }
        // Other shares of the same path: the same clients twice, or overlapping networks.
        let others: Vec<&Value> = self
            .nfs
            .shares
            .rows()
            .filter(|s| id_of(s, "id") != own_id && s["path"] == path.as_str())
            .collect();
        let mut used_networks: Vec<Network> = Vec::new();
        let mut used_hosts: Vec<String> = Vec::new();
        for share in &others {
            let share_hosts = strings(share.get("hosts"));
            let share_networks = strings(share.get("networks"));
            for host in &share_hosts {
                match host.parse::<IpAddr>() {
                    Ok(ip) => {
                        used_hosts.extend(Network::parse(&ip.to_string()).map(|n| n.to_string()))
                    }
                    Err(_) => used_hosts.push(host.clone()),
                }
            }
            used_networks.extend(share_networks.iter().filter_map(|n| Network::parse(n)));
            if share_hosts.is_empty() && share_networks.is_empty() {
                used_networks.extend(Network::parse("0.0.0.0/0"));
                used_networks.extend(Network::parse("::/0"));
            }
        }
        let mut unique_networks = networks.clone();
        unique_networks.dedup();
        for network in unique_networks {
            if used_networks.contains(&network) {
                list.push(FieldError::new(
                    format!("{schema}.networks"),
                    format!(
                        "ERROR - Another NFS share already exports {path} for network {network}"
                    ),
                ));
            }
            if let Some(other) = used_networks.iter().find(|u| network.overlaps(**u)) {
                list.push(FieldError::new(
                    format!("{schema}.networks"),
                    format!("ERROR - This or another NFS share exports {path} to {other} and overlaps network {network}"),
                ));
            }
            used_networks.push(network);
        }
        for host in &hosts {
            if used_hosts.contains(host) {
                list.push(FieldError::new(
                    format!("{schema}.hosts"),
                    format!("ERROR - Another NFS share already exports {path} for host {host}"),
                ));
            } else if host.parse::<IpAddr>().is_err()
                && !host.starts_with('@')
                && !host.contains(['*', '?'])
            {
                // The lab has no resolver: a name never resolves.
                list.push(FieldError::new(
                    format!("{schema}.hosts"),
                    format!("Unable to resolve host '{host}'"),
                ));
            }
        }
        check(std::mem::take(&mut list))?;

        // `validate_share_path`: an export conflict with a share of the same path.
        let my_networks = strings(row.get("networks"));
        for share in &others {
            let common_hosts: Vec<&String> = hosts
                .iter()
                .filter(|h| *h != "*" && strings(share.get("hosts")).contains(h))
                .collect();
            let common_networks: Vec<&String> = my_networks
                .iter()
                .filter(|n| strings(share.get("networks")).contains(n))
                .collect();
            if !common_hosts.is_empty() || !common_networks.is_empty() {
                let reason = if common_hosts.is_empty() {
                    format!(
                        "{{{}}}",
                        common_networks
                            .iter()
                            .map(|n| format!("'{n}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!(
                        "{{{}}}",
                        common_hosts
                            .iter()
                            .map(|h| format!("'{h}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                list.push(FieldError::new(
                    format!("{schema}.path"),
                    format!("ERROR - Export conflict. Another share with the same path exports {path} for {reason}"),
                ));
                break;
            }
        }
        check(std::mem::take(&mut list))?;

        // Mapped users and groups, maproot against mapall, security flavours.
        let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
        for kind in ["maproot", "mapall"] {
            match (
                text(&format!("{kind}_user")),
                text(&format!("{kind}_group")),
            ) {
                (None, None) => {}
                (None, Some(_)) => list.push(FieldError::new(
                    format!("{schema}.{kind}_user"),
                    "This field is required when map group is specified",
                )),
                (Some(user), group) => {
                    if !USERS.contains(&user.as_str()) {
                        list.push(FieldError::new(
                            format!("{schema}.{kind}_user"),
                            format!("User not found: {user}"),
                        ));
                    }
                    if let Some(group) = group.filter(|g| !GROUPS.contains(&g.as_str())) {
                        list.push(FieldError::new(
                            format!("{schema}.{kind}_group"),
                            format!("Group not found: {group}"),
                        ));
                    }
                }
            }
        }
        if text("maproot_user").is_some() && text("mapall_user").is_some() {
            list.push(FieldError::new(
                format!("{schema}.mapall_user"),
                "maproot_user disqualifies mapall_user",
            ));
        }
        let v4_only: Vec<String> = strings(row.get("security"))
            .into_iter()
            .filter(|s| s != "SYS")
            .collect();
        let v4 = self.nfs.config["protocols"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "NFSV4"));
        if !v4_only.is_empty() && !v4 {
            list.push(FieldError::new(
                format!("{schema}.security"),
                format!(
                    "The following security flavor(s) require NFSv4 to be enabled: {}.",
                    v4_only.join(",")
                ),
            ));
        }
        if row.get("expose_snapshots") == Some(&Value::Bool(true)) {
            list.push(FieldError::new(
                format!("{schema}.expose_snapshots"),
                "This is an enterprise feature and may not be enabled without a valid license.",
            ));
        }
        check(list)
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

#[cfg(test)]
mod tests {
    use super::Network;

    #[test]
    fn networks_read_as_python_ip_network_without_strict() {
        let n = |t: &str| Network::parse(t).unwrap();
        assert_eq!(n("10.0.0.5").to_string(), "10.0.0.5/32");
        assert_eq!(n("10.0.0.5/24").to_string(), "10.0.0.0/24");
        assert_eq!(n("fd00::1/64").to_string(), "fd00::/64");
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("nas.local").is_none());
        assert!(n("10.0.0.0/8").overlaps(n("10.1.2.3/32")));
        assert!(!n("10.0.0.0/24").overlaps(n("10.0.1.0/24")));
        assert!(!n("0.0.0.0/0").overlaps(n("::/0")));
        assert!(n("0.0.0.0/0").overlaps(n("192.0.2.0/24")));
    }
}
