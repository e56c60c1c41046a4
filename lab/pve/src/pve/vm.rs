//! Helpers over raw PVE config values: property strings, NIC MACs, disk keys and sizes.

use std::collections::BTreeMap;

/// NIC models that double as the MAC key (`virtio=BC:24:11:..`).
const NIC_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

/// `k=v,k2=v2` into a map; a part without `=` is stored under `""`.
pub(crate) fn parse_kv(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (String::new(), p.to_string()),
        })
        .collect()
}

/// The MAC of a `netN` value, if it has one.
pub(crate) fn mac_of(net: &str) -> Option<String> {
    let kv = parse_kv(net);
    if let Some(mac) = kv.get("macaddr") {
        return Some(mac.clone());
    }
    NIC_MODELS.iter().find_map(|m| kv.get(*m).cloned())
}

/// The NIC model of a `netN` value (`virtio` when it names none).
pub(crate) fn nic_model(net: &str) -> String {
    let kv = parse_kv(net);
    if let Some(model) = kv.get("model") {
        return model.clone();
    }
    NIC_MODELS
        .iter()
        .find(|m| kv.contains_key(**m))
        .map_or_else(|| "virtio".to_string(), |m| (*m).to_string())
}

/// Gives a `netN` value a MAC (PVE adds one when the request has none) or replaces it
/// (clone). The result has PVE's canonical `model=MAC` first.
pub(crate) fn with_mac(net: &str, mac: &str) -> String {
    let mut model = None;
    let mut rest = Vec::new();
    for part in net.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None if model.is_none() => model = Some(part.to_string()),
            Some((k, _)) if NIC_MODELS.contains(&k) => model = Some(k.to_string()),
            Some(("model", v)) => model = Some(v.to_string()),
            Some(("macaddr", _)) => {}
            _ => rest.push(part.to_string()),
        }
    }
    let mut out = vec![format!(
        "{}={mac}",
        model.unwrap_or_else(|| "virtio".into())
    )];
    out.extend(rest);
    out.join(",")
}

/// Config keys that hold disks (qemu-server `is_valid_drivename`).
pub(crate) fn is_disk_key(key: &str) -> bool {
    let (base, index) = key.split_at(key.trim_end_matches(|c: char| c.is_ascii_digit()).len());
    let Ok(n) = index.parse::<u32>() else {
        return false;
    };
    match base {
        "ide" => n < 4,
        "sata" => n < 6,
        "scsi" => n < 31,
        "virtio" => n < 16,
        "efidisk" | "tpmstate" => n == 0,
        _ => false,
    }
}

/// The volume ID of a disk value (`local-lvm:vm-100-disk-0,size=8G` → `local-lvm:vm-100-disk-0`).
pub(crate) fn volid_of(disk: &str) -> &str {
    disk.split(',').next().unwrap_or_default()
}

/// Whether a disk value is a CD-ROM or cloud-init drive rather than a data disk.
pub(crate) fn is_cdrom(disk: &str) -> bool {
    disk.split(',').any(|p| p == "media=cdrom") || volid_of(disk).ends_with("-cloudinit")
}

/// `8G`, `512M`, `10.5G`, `1024` (bytes? no: PVE's default unit for sizes is bytes only in
/// `size=`; resize treats a bare number as bytes) into bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let (num, unit) = match text.chars().last()? {
        c @ ('K' | 'M' | 'G' | 'T') => (&text[..text.len() - 1], Some(c)),
        _ => (text, None),
    };
    let value: f64 = num.parse().ok()?;
    let factor = match unit {
        Some('K') => 1u64 << 10,
        Some('M') => 1 << 20,
        Some('G') => 1 << 30,
        Some('T') => 1 << 40,
        _ => 1,
    };
    Some((value * factor as f64) as u64)
}

/// Bytes as PVE writes `size=` (the largest whole unit).
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Replaces (or adds) `size=` in a disk value.
pub(crate) fn with_size(disk: &str, bytes: u64) -> String {
    let mut parts: Vec<String> = disk
        .split(',')
        .filter(|p| !p.starts_with("size="))
        .map(str::to_string)
        .collect();
    parts.push(format!("size={}", format_size(bytes)));
    parts.join(",")
}

/// `agent: 1` or `agent: enabled=1,...`.
pub(crate) fn agent_enabled(config: &BTreeMap<String, String>) -> bool {
    config.get("agent").is_some_and(|v| {
        let kv = parse_kv(v);
        kv.get("enabled")
            .or_else(|| kv.get(""))
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    })
}

/// Tags as PVE stores them on update (`GuestHelpers::get_unique_tags` with the default
/// datacenter `tag-style`: case-insensitive, `ordering=alphabetical`): split on `,`, `;` or
/// spaces, duplicates dropped, sorted, joined with `;`.
pub(crate) fn normalize_tags(value: &str) -> String {
    let mut tags: Vec<&str> = Vec::new();
    for tag in value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            tags.push(tag);
        }
    }
    tags.sort_by_key(|t| t.to_ascii_lowercase());
    tags.join(";")
}

/// Whether a change reaches a running VM at once (fast-plug options, cloud-init keys, and
/// the default `hotplug: network,disk,usb`) or waits in `pending` for the next start.
pub(crate) fn applies_while_running(key: &str) -> bool {
    matches!(
        key,
        "name"
            | "description"
            | "tags"
            | "onboot"
            | "protection"
            | "hookscript"
            | "startup"
            | "lock"
            | "cicustom"
            | "ciuser"
            | "cipassword"
            | "citype"
            | "ciupgrade"
            | "sshkeys"
            | "nameserver"
            | "searchdomain"
    ) || key.starts_with("ipconfig")
        || key.starts_with("net")
        || key.starts_with("unused")
        || key.starts_with("usb")
        || (is_disk_key(key)
            && !key.starts_with("ide")
            && !key.starts_with("efidisk")
            && !key.starts_with("tpmstate"))
}

/// Boolean parameter values as PVE accepts them.
pub(crate) fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_values_and_sizes() {
        assert_eq!(
            mac_of("virtio=BC:24:11:00:00:01,bridge=vmbr0").as_deref(),
            Some("BC:24:11:00:00:01")
        );
        assert_eq!(
            with_mac("virtio,bridge=vmbr0", "BC:24:11:00:00:02"),
            "virtio=BC:24:11:00:00:02,bridge=vmbr0"
        );
        assert_eq!(
            with_mac(
                "model=e1000,macaddr=AA:00:00:00:00:00,bridge=vmbr1",
                "BC:24:11:00:00:03"
            ),
            "e1000=BC:24:11:00:00:03,bridge=vmbr1"
        );
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(format_size(8 << 30), "8G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(normalize_tags("b, a;B  c"), "a;b;c");
        assert!(is_disk_key("scsi30") && !is_disk_key("scsi31") && !is_disk_key("net0"));
    }
}
