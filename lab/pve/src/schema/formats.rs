//! PVE's named string formats (`pve-node`, `dns-name`, `urlencoded`, ...), with the
//! messages of pve-common `JSONSchema.pm` and qemu-server. A format the lab does not know
//! is accepted after the type check; `docs/lab.md` lists the checked ones.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use regex::Regex;

thread_local! {
    static REGEXES: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// `value` matches the whole of `pattern`. Compiled patterns are cached per thread; a
/// pattern that does not compile matches nothing.
pub(crate) fn full_match(pattern: &str, value: &str) -> bool {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(&format!("^(?:{pattern})$")).ok());
        re.as_ref().is_some_and(|re| re.is_match(value))
    })
}

const NODE_RE: &str = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?";
const STORAGE_RE: &str = r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]";
const CONFIGID_RE: &str = r"(?i)[a-z][a-z0-9_-]+";
const TAG_RE: &str = r"(?i)[a-z0-9_][a-z0-9_\-+.]*";

/// Checks `value` against the named format; the error is PVE's text (without the
/// `invalid format - ` prefix the caller adds).
pub(crate) fn check_format(format: &str, value: &str) -> Result<(), String> {
    match format {
        "pve-node" => ok_if(
            full_match(NODE_RE, value),
            "value does not look like a valid node name",
        ),
        "pve-vmid" => ok_if(
            full_match(r"[1-9][0-9]{2,8}", value),
            "value does not look like a valid VM ID",
        ),
        "dns-name" => ok_if(
            is_dns_name(value),
            "value does not look like a valid DNS name",
        ),
        "urlencoded" => ok_if(
            full_match(r"[-%a-zA-Z0-9_.!~*'()]*", value),
            &format!("invalid urlencoded string: {value}"),
        ),
        "pve-tag-list" => check_tag_list(value),
        "pve-storage-id" => ok_if(
            full_match(STORAGE_RE, value),
            &format!("storage ID '{value}' contains illegal characters"),
        ),
        "pve-configid" => ok_if(
            full_match(CONFIGID_RE, value),
            &format!("invalid configuration ID '{value}'"),
        ),
        "pve-configid-list" => {
            split_list(value).try_for_each(|id| check_format("pve-configid", id))
        }
        "pve-poolid" => ok_if(
            full_match(r"[A-Za-z0-9.\-_]+", value),
            &format!("pool name '{value}' contains illegal characters"),
        ),
        "pve-realm" => ok_if(
            full_match(r"[A-Za-z][A-Za-z0-9.\-_]+", value),
            &format!("realm name '{value}' contains illegal characters"),
        ),
        "mac-addr" => ok_if(
            full_match(r"(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", value),
            "value does not look like a valid unicast MAC address",
        ),
        "pve-bridge-id" => ok_if(
            full_match(r"[-_.\w\d]+", value),
            &format!("invalid bridge ID '{value}'"),
        ),
        "address-list" => split_list(value).try_for_each(|a| {
            ok_if(
                a.parse::<IpAddr>().is_ok(),
                &format!("value '{a}' does not look like a valid IP address"),
            )
        }),
        "ip" => ok_if(
            value.parse::<IpAddr>().is_ok(),
            &format!("value '{value}' does not look like a valid IP address"),
        ),
        "ipv4" => ok_if(
            value.parse::<Ipv4Addr>().is_ok(),
            &format!("value '{value}' does not look like a valid IPv4 address"),
        ),
        "ipv6" => ok_if(
            value.parse::<Ipv6Addr>().is_ok(),
            &format!("value '{value}' does not look like a valid IPv6 address"),
        ),
        "CIDR" => ok_if(
            is_cidr(value, None),
            "value does not look like a valid CIDR network",
        ),
        "pve-volume-id" => check_volume_id(value),
        "pve-volume-id-or-qm-path" => {
            if matches!(value, "none" | "cdrom") || value.starts_with('/') {
                Ok(())
            } else {
                check_volume_id(value)
            }
        }
        "pve-volume-id-or-absolute-path" => {
            if value.starts_with('/') {
                Ok(())
            } else {
                check_volume_id(value)
            }
        }
        "disk-size" => ok_if(
            full_match(r"\d+(\.\d+)?[KMGT]?", value),
            &format!("unable to parse size '{value}'"),
        ),
        "pve-qm-ipconfig" => check_ipconfig(value),
        "pve-qm-cicustom" => check_cicustom(value),
        _ => Ok(()),
    }
}

fn ok_if(ok: bool, message: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(message.to_string()) }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

fn is_dns_name(value: &str) -> bool {
    !value.is_empty() && value.split('.').all(|label| full_match(NODE_RE, label))
}

fn check_tag_list(value: &str) -> Result<(), String> {
    for tag in split_list(value) {
        if !full_match(TAG_RE, tag) {
            return Err(format!("invalid tag '{tag}' in tag list"));
        }
    }
    Ok(())
}

fn check_volume_id(value: &str) -> Result<(), String> {
    match value.split_once(':') {
        Some((storage, rest)) if full_match(STORAGE_RE, storage) && !rest.is_empty() => Ok(()),
        _ => Err(format!("unable to parse volume ID '{value}'")),
    }
}

/// `addr/prefix` with an address of the given family (or any).
pub(crate) fn is_cidr(value: &str, v6: Option<bool>) -> bool {
    let Some((addr, prefix)) = value.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => v6 != Some(true) && prefix <= 32,
        Ok(IpAddr::V6(_)) => v6 != Some(false) && prefix <= 128,
        Err(_) => false,
    }
}

/// qemu-server's `pve-qm-ipconfig`: `[ip=<CIDR>|dhcp][,gw=<IPv4>][,ip6=<CIDR>|auto|dhcp][,gw6=<IPv6>]`.
fn check_ipconfig(value: &str) -> Result<(), String> {
    let mut seen = Vec::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(format!("format error\nip: missing key in '{part}'"));
        };
        if seen.contains(&key) {
            return Err(format!("format error\n{key}: duplicate key"));
        }
        seen.push(key);
        let ok = match key {
            "ip" => val == "dhcp" || is_cidr(val, Some(false)),
            "gw" => val.parse::<Ipv4Addr>().is_ok(),
            "ip6" => matches!(val, "dhcp" | "auto") || is_cidr(val, Some(true)),
            "gw6" => val.parse::<Ipv6Addr>().is_ok(),
            _ => {
                return Err(format!(
                    "format error\n{key}: property is not defined in schema and the schema does not allow additional properties"
                ));
            }
        };
        if !ok {
            return Err(format!(
                "format error\n{key}: invalid format - value '{val}' is not valid"
            ));
        }
    }
    Ok(())
}

/// qemu-server's `pve-qm-cicustom`: `[meta=<volume>][,network=<volume>][,user=<volume>][,vendor=<volume>]`.
fn check_cicustom(value: &str) -> Result<(), String> {
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(format!("format error\nmissing key in '{part}'"));
        };
        if !matches!(key, "meta" | "network" | "user" | "vendor") {
            return Err(format!(
                "format error\n{key}: property is not defined in schema and the schema does not allow additional properties"
            ));
        }
        check_volume_id(val).map_err(|e| format!("format error\n{key}: invalid format - {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_good_and_reject_bad_values() {
        assert!(check_format("pve-node", "pve1").is_ok());
        assert!(check_format("pve-node", "pve_1").is_err());
        assert!(check_format("dns-name", "web-1.lab").is_ok());
        assert!(check_format("dns-name", "web_1").is_err());
        assert!(check_format("urlencoded", "ssh-ed25519%20AAAA").is_ok());
        assert!(check_format("urlencoded", "ssh-ed25519 AAAA").is_err());
        assert!(check_format("pve-tag-list", "kiln-lab;k8s,web").is_ok());
        assert!(check_format("pve-tag-list", "bad/tag").is_err());
        assert!(check_format("pve-qm-ipconfig", "ip=10.0.0.5/24,gw=10.0.0.1").is_ok());
        assert!(check_format("pve-qm-ipconfig", "ip=10.0.0.5").is_err());
        assert!(check_format("pve-qm-cicustom", "user=local:snippets/a.yaml").is_ok());
        assert!(check_format("pve-qm-cicustom", "users=local:snippets/a.yaml").is_err());
        assert!(check_format("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check_format("mac-addr", "BD:24:11:00:00:01").is_err());
    }
}
