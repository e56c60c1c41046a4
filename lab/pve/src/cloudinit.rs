//! NoCloud data as qemu-server's `Cloudinit.pm` generates it from `ci*` keys, `ipconfigN`,
//! `nameserver`/`searchdomain`, `sshkeys` and `cicustom` snippets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::sshkeys::decode_sshkeys;

/// The files of a NoCloud seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoCloud {
    pub user_data: String,
    pub meta_data: String,
    pub network_config: String,
    pub vendor_data: Option<String>,
}

/// Which file of the seed (the `type` of `GET .../cloudinit/dump`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    User,
    Network,
    Meta,
}

/// Renders the seed for a VM's current config; `snippet` resolves `cicustom` volumes.
pub(crate) fn render(
    vmid: u32,
    config: &BTreeMap<String, String>,
    snippet: &dyn Fn(&str) -> Option<String>,
) -> Result<NoCloud, String> {
    let custom = parse_cicustom(config.get("cicustom").map(String::as_str).unwrap_or(""));
    let load = |kind: &str| -> Result<Option<String>, String> {
        match custom.get(kind) {
            Some(volid) => snippet(volid)
                .map(Some)
                .ok_or_else(|| format!("volume '{volid}' does not exist")),
            None => Ok(None),
        }
    };
    let user_data = match load("user")? {
        Some(text) => text,
        None => user_data(vmid, config)?,
    };
    let network_config = match load("network")? {
        Some(text) => text,
        None => network_config(config),
    };
    let vendor_data = load("vendor")?;
    let meta_data = match load("meta")? {
        Some(text) => text,
        None => {
            let mut hasher = Sha1::new();
            hasher.update(user_data.as_bytes());
            hasher.update(network_config.as_bytes());
            let id: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("instance-id: {id}\n")
        }
    };
    Ok(NoCloud {
        user_data,
        meta_data,
        network_config,
        vendor_data,
    })
}

/// One part of the seed, for `cloudinit/dump`.
pub(crate) fn dump(data: &NoCloud, part: Part) -> String {
    match part {
        Part::User => data.user_data.clone(),
        Part::Network => data.network_config.clone(),
        Part::Meta => data.meta_data.clone(),
    }
}

fn parse_cicustom(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user_data(vmid: u32, config: &BTreeMap<String, String>) -> Result<String, String> {
    let name = config
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("VM{vmid}"));
    let host = name.split('.').next().unwrap_or(&name).to_string();
    let fqdn = match config.get("searchdomain") {
        Some(domain) if !name.contains('.') => format!("{name}.{domain}"),
        _ => name.clone(),
    };
    let mut out = String::from("#cloud-config\n");
    let _ = writeln!(out, "hostname: {host}");
    out.push_str("manage_etc_hosts: true\n");
    let _ = writeln!(out, "fqdn: {fqdn}");
    if let Some(user) = config.get("ciuser") {
        let _ = writeln!(out, "user: {user}");
    }
    if let Some(password) = config.get("cipassword") {
        let _ = writeln!(out, "password: {password}");
    }
    if let Some(keys) = config.get("sshkeys") {
        let keys = decode_sshkeys(keys)?;
        if !keys.is_empty() {
            out.push_str("ssh_authorized_keys:\n");
            for key in keys {
                let _ = writeln!(out, "  - {key}");
            }
        }
    }
    out.push_str("chpasswd:\n  expire: False\n");
    out.push_str("users:\n  - default\n");
    // `ciupgrade` defaults to 1 since PVE 8.0.
    if config.get("ciupgrade").is_none_or(|v| v != "0") {
        out.push_str("package_upgrade: true\n");
    }
    Ok(out)
}

fn network_config(config: &BTreeMap<String, String>) -> String {
    let mut out = String::from("version: 1\nconfig:\n");
    for index in 0..32 {
        let Some(net) = config.get(&format!("net{index}")) else {
            continue;
        };
        let mac = crate::pve::vm::mac_of(net)
            .unwrap_or_default()
            .to_lowercase();
        let _ = writeln!(
            out,
            "    - type: physical\n      name: eth{index}\n      mac_address: '{mac}'\n      subnets:"
        );
        let ipconfig = crate::pve::vm::parse_kv(
            config
                .get(&format!("ipconfig{index}"))
                .map_or("", String::as_str),
        );
        match ipconfig.get("ip").map(String::as_str) {
            Some("dhcp") | None => out.push_str("      - type: dhcp4\n"),
            Some(cidr) => {
                let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
                let _ = writeln!(
                    out,
                    "      - type: static\n        address: '{addr}'\n        netmask: '{}'",
                    netmask(prefix.parse().unwrap_or(32))
                );
                if let Some(gw) = ipconfig.get("gw") {
                    let _ = writeln!(out, "        gateway: '{gw}'");
                }
            }
        }
        match ipconfig.get("ip6").map(String::as_str) {
            Some("dhcp") => out.push_str("      - type: dhcp6\n"),
            Some("auto") => out.push_str("      - type: ipv6_slaac\n"),
            Some(cidr) => {
                let _ = writeln!(out, "      - type: static6\n        address: '{cidr}'");
                if let Some(gw) = ipconfig.get("gw6") {
                    let _ = writeln!(out, "        gateway: '{gw}'");
                }
            }
            None => {}
        }
    }
    let nameservers: Vec<&str> = config
        .get("nameserver")
        .map(|v| v.split([' ', ',', ';']).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let search: Vec<&str> = config
        .get("searchdomain")
        .map(|v| v.split([' ', ',', ';']).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if !nameservers.is_empty() || !search.is_empty() {
        out.push_str("    - type: nameserver\n");
        if !nameservers.is_empty() {
            out.push_str("      address:\n");
            for ns in nameservers {
                let _ = writeln!(out, "      - '{ns}'");
            }
        }
        if !search.is_empty() {
            out.push_str("      search:\n");
            for domain in search {
                let _ = writeln!(out, "      - '{domain}'");
            }
        }
    }
    out
}

fn netmask(prefix: u32) -> String {
    let bits: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    std::net::Ipv4Addr::from(bits).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_ip_user_and_keys_are_rendered() {
        let config = BTreeMap::from([
            ("name".to_string(), "web1".to_string()),
            ("ciuser".to_string(), "kiln".to_string()),
            (
                "net0".to_string(),
                "virtio=BC:24:11:00:00:01,bridge=vmbr0".to_string(),
            ),
            (
                "ipconfig0".to_string(),
                "ip=10.0.0.5/24,gw=10.0.0.1".to_string(),
            ),
            ("searchdomain".to_string(), "lab".to_string()),
            ("ciupgrade".to_string(), "0".to_string()),
        ]);
        let seed = render(100, &config, &|_| None).unwrap();
        assert!(seed.user_data.contains("hostname: web1\n"));
        assert!(seed.user_data.contains("fqdn: web1.lab\n"));
        assert!(seed.user_data.contains("user: kiln\n"));
        assert!(!seed.user_data.contains("package_upgrade"));
        assert!(
            seed.network_config
                .contains("mac_address: 'bc:24:11:00:00:01'")
        );
        assert!(seed.network_config.contains("netmask: '255.255.255.0'"));
        assert!(seed.network_config.contains("gateway: '10.0.0.1'"));
        assert!(seed.meta_data.starts_with("instance-id: "));
    }

    #[test]
    fn cicustom_snippets_replace_generated_parts_and_must_exist() {
        let config = BTreeMap::from([(
            "cicustom".to_string(),
            "user=local:snippets/u.yaml".to_string(),
        )]);
        let seed = render(100, &config, &|v| {
            (v == "local:snippets/u.yaml").then(|| "#cloud-config\n{}\n".to_string())
        })
        .unwrap();
        assert_eq!(seed.user_data, "#cloud-config\n{}\n");
        let err = render(100, &config, &|_| None).unwrap_err();
        assert_eq!(err, "volume 'local:snippets/u.yaml' does not exist");
    }
}
