//! Typed builder for the VM config keys kiln sets (POST/PUT `/config`), and
//! a view of the config PVE returns (GET `/config`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use regex::Regex;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::de::{scalar_text, split_tags};
use crate::error::{Error, Result};
use crate::params::Params;

/// Characters PVE's `urlencoded` format leaves alone
/// (`^[-%a-zA-Z0-9_.!~*'()]*$`, `JSONSchema.pm:pve_verify_urlencoded`).
/// Everything else, spaces included, becomes `%XX` (`%20`, never `+`).
const URLENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Encodes OpenSSH public keys (one per line) for the `sshkeys` key the way
/// PVE decodes it (`uri_unescape`); the form encoding then adds its own layer.
pub fn encode_sshkeys<S: AsRef<str>>(keys: &[S]) -> String {
    let joined: Vec<&str> = keys.iter().map(|k| k.as_ref().trim()).collect();
    utf8_percent_encode(&joined.join("\n"), URLENCODED).to_string()
}

static TAG_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$").ok());
static DNS_NAME_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]*[A-Za-z0-9])?)*$",
    )
    .ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// One `ipconfigN` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpConfig {
    /// `dhcp` or a CIDR such as `10.0.0.5/24`.
    pub ip: Option<String>,
    pub gw: Option<IpAddr>,
    /// `dhcp`, `auto` or a CIDR.
    pub ip6: Option<String>,
    pub gw6: Option<IpAddr>,
}

impl IpConfig {
    pub fn static_v4(cidr: impl Into<String>, gw: Option<IpAddr>) -> Self {
        Self {
            ip: Some(cidr.into()),
            gw,
            ..Self::default()
        }
    }

    pub fn dhcp() -> Self {
        Self {
            ip: Some("dhcp".into()),
            ..Self::default()
        }
    }

    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ip) = &self.ip {
            parts.push(format!("ip={ip}"));
        }
        if let Some(gw) = &self.gw {
            parts.push(format!("gw={gw}"));
        }
        if let Some(ip6) = &self.ip6 {
            parts.push(format!("ip6={ip6}"));
        }
        if let Some(gw6) = &self.gw6 {
            parts.push(format!("gw6={gw6}"));
        }
        parts.join(",")
    }
}

/// `cicustom`: snippet volumes replacing parts of the generated cloud-init.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiCustom {
    pub user: Option<String>,
    pub network: Option<String>,
    pub meta: Option<String>,
    pub vendor: Option<String>,
}

impl CiCustom {
    pub fn render(&self) -> String {
        [
            ("meta", &self.meta),
            ("network", &self.network),
            ("user", &self.user),
            ("vendor", &self.vendor),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// A `netN` device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// `virtio`, `e1000`, …
    pub model: String,
    /// Keep a MAC across rebuilds; `None` lets PVE pick one.
    pub mac: Option<String>,
    pub bridge: String,
    pub firewall: Option<bool>,
    pub vlan_tag: Option<u16>,
}

impl NetDevice {
    pub fn virtio(bridge: impl Into<String>) -> Self {
        Self {
            model: "virtio".into(),
            mac: None,
            bridge: bridge.into(),
            firewall: None,
            vlan_tag: None,
        }
    }

    pub fn render(&self) -> String {
        let mut s = match &self.mac {
            Some(mac) => format!("{}={mac}", self.model),
            None => self.model.clone(),
        };
        s.push_str(&format!(",bridge={}", self.bridge));
        if let Some(fw) = self.firewall {
            s.push_str(if fw { ",firewall=1" } else { ",firewall=0" });
        }
        if let Some(tag) = self.vlan_tag {
            s.push_str(&format!(",tag={tag}"));
        }
        s
    }
}

/// The `agent` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOption {
    pub enabled: bool,
    pub fstrim_cloned_disks: Option<bool>,
}

/// A set of config changes. Setters never fail; [`VmConfigUpdate::params`]
/// validates against the schema formats and reports the first bad key.
#[derive(Debug, Clone, Default)]
pub struct VmConfigUpdate {
    params: Params,
    delete: Vec<String>,
    problems: Vec<String>,
}

impl VmConfigUpdate {
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.params = self.params.set(key, value);
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        if !matches(&DNS_NAME_RE, name) {
            self.problems.push(format!(
                "name {name:?} is not a DNS name ([A-Za-z0-9-] labels)"
            ));
        }
        self.with("name", name)
    }

    pub fn cores(self, cores: u32) -> Self {
        self.with("cores", cores)
    }

    pub fn sockets(self, sockets: u32) -> Self {
        self.with("sockets", sockets)
    }

    /// Memory in MiB.
    pub fn memory_mib(self, mib: u64) -> Self {
        self.with("memory", mib)
    }

    pub fn onboot(self, on: bool) -> Self {
        self.with("onboot", u8::from(on))
    }

    pub fn ciuser(self, user: &str) -> Self {
        self.with("ciuser", user)
    }

    pub fn cipassword(mut self, password: SecretString) -> Self {
        self.params = self.params.secret("cipassword", password);
        self
    }

    /// `nocloud` (default for Linux), `configdrive2` or `opennebula`.
    pub fn citype(self, citype: &str) -> Self {
        self.with("citype", citype)
    }

    /// PVE ≥ 8.0 upgrades packages on first boot unless told not to.
    pub fn ciupgrade(self, on: bool) -> Self {
        self.with("ciupgrade", u8::from(on))
    }

    pub fn sshkeys<S: AsRef<str>>(self, keys: &[S]) -> Self {
        self.with("sshkeys", encode_sshkeys(keys))
    }

    pub fn ipconfig(mut self, index: u8, ip: &IpConfig) -> Self {
        if index > 31 {
            self.problems
                .push(format!("ipconfig{index}: index must be 0..=31"));
        }
        self.with(&format!("ipconfig{index}"), ip.render())
    }

    pub fn nameservers(self, servers: &[IpAddr]) -> Self {
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        self.with("nameserver", list.join(" "))
    }

    pub fn searchdomain(self, domain: &str) -> Self {
        self.with("searchdomain", domain)
    }

    pub fn cicustom(self, custom: &CiCustom) -> Self {
        self.with("cicustom", custom.render())
    }

    pub fn net(mut self, index: u8, dev: &NetDevice) -> Self {
        if index > 31 {
            self.problems
                .push(format!("net{index}: index must be 0..=31"));
        }
        self.with(&format!("net{index}"), dev.render())
    }

    /// Stored `;`-joined like PVE does.
    pub fn tags<S: AsRef<str>>(mut self, tags: &[S]) -> Self {
        for t in tags {
            if !matches(&TAG_RE, t.as_ref()) {
                self.problems.push(format!(
                    "tag {:?} does not match [a-z0-9_][a-z0-9_-+.]*",
                    t.as_ref()
                ));
            }
        }
        let joined: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
        self.with("tags", joined.join(";"))
    }

    pub fn description(mut self, text: &str) -> Self {
        if text.len() > 8192 {
            self.problems.push(format!(
                "description is {} bytes; PVE allows 8192",
                text.len()
            ));
        }
        self.with("description", text)
    }

    pub fn agent(self, agent: AgentOption) -> Self {
        let mut v = String::from(if agent.enabled { "1" } else { "0" });
        if let Some(f) = agent.fstrim_cloned_disks {
            v.push_str(if f {
                ",fstrim_cloned_disks=1"
            } else {
                ",fstrim_cloned_disks=0"
            });
        }
        self.with("agent", v)
    }

    /// Optimistic locking: PVE rejects the change if the config moved on.
    pub fn digest(self, digest: &str) -> Self {
        self.with("digest", digest)
    }

    /// POST only: PVE waits up to `secs` (1–30) and answers `null` instead of
    /// a UPID when the task finished OK by then. PUT rejects it.
    pub fn background_delay(mut self, secs: u8) -> Self {
        if !(1..=30).contains(&secs) {
            self.problems
                .push(format!("background_delay {secs} must be 1..=30"));
        }
        self.with("background_delay", secs)
    }

    /// Removes keys (`delete=a,b`).
    pub fn delete(mut self, key: &str) -> Self {
        self.delete.push(key.to_owned());
        self
    }

    /// Any other key, for settings without a typed setter.
    pub fn raw(self, key: &str, value: &str) -> Self {
        self.with(key, value)
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.delete.is_empty()
    }

    /// The request parameters, or the first problem found.
    pub fn params(&self) -> Result<Params> {
        if let Some(p) = self.problems.first() {
            return Err(Error::Invalid(p.clone()));
        }
        if let Some(k) = self.delete.iter().find(|k| self.params.contains(k)) {
            return Err(Error::Invalid(format!("{k} is both set and deleted")));
        }
        let mut params = self.params.clone();
        if !self.delete.is_empty() {
            params = params.set("delete", self.delete.join(","));
        }
        Ok(params)
    }
}

/// The config as PVE returns it: values kept as JSON (numbers or strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct VmConfig(pub BTreeMap<String, Value>);

impl VmConfig {
    /// Any value as text.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(scalar_text)
    }

    pub fn name(&self) -> Option<String> {
        self.get("name")
    }

    pub fn description(&self) -> Option<String> {
        self.get("description")
    }

    pub fn digest(&self) -> Option<String> {
        self.get("digest")
    }

    pub fn lock(&self) -> Option<String> {
        self.get("lock").filter(|l| !l.is_empty())
    }

    pub fn tags(&self) -> Vec<String> {
        self.get("tags").map(|t| split_tags(&t)).unwrap_or_default()
    }

    pub fn is_template(&self) -> bool {
        self.get("template").is_some_and(|t| t == "1")
    }

    /// The MAC of `netN`, upper-cased (`virtio=AA:BB:…,bridge=…`).
    pub fn mac(&self, index: u8) -> Option<String> {
        mac_from_net(&self.get(&format!("net{index}"))?)
    }

    /// `sshkeys` decoded back to the key lines.
    pub fn sshkeys(&self) -> Vec<String> {
        self.get("sshkeys")
            .map(|s| {
                percent_encoding::percent_decode_str(&s)
                    .decode_utf8_lossy()
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a disk slot holds a cloud-init drive (`…:cloudinit` or
    /// `vm-N-cloudinit`), which clones need for ci* keys to take effect.
    pub fn has_cloudinit_drive(&self) -> bool {
        self.0.iter().any(|(k, v)| {
            let disk_slot = ["ide", "sata", "scsi", "virtio"]
                .iter()
                .any(|p| k.strip_prefix(p).is_some_and(|n| n.parse::<u8>().is_ok()));
            disk_slot && scalar_text(v).is_some_and(|s| s.contains("cloudinit"))
        })
    }
}

/// Finds the `model=MAC` or `macaddr=MAC` part of a `netN` value.
pub fn mac_from_net(net: &str) -> Option<String> {
    net.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        let looks_like_mac = v.len() == 17 && v.split(':').count() == 6;
        (looks_like_mac && k != "bridge").then(|| v.to_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshkeys_encoded_like_pve_decodes() {
        let keys = [
            "ssh-ed25519 AAAAC3Nza+C1/lZDI1= user@host",
            "ecdsa-sha2-nistp256 AAAAE2= cardno:000611",
        ];
        let enc = encode_sshkeys(&keys);
        assert!(
            Regex::new(r"^[-%a-zA-Z0-9_.!~*'()]*$")
                .unwrap()
                .is_match(&enc),
            "{enc}"
        );
        assert!(enc.contains("%20") && !enc.contains('+'), "{enc}");
        assert!(
            enc.contains("%2B")
                && enc.contains("%3A")
                && enc.contains("%40")
                && enc.contains("%0A")
        );
        let decoded = percent_encoding::percent_decode_str(&enc)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, keys.join("\n"));
    }

    #[test]
    fn builder_renders_keys() {
        let u = VmConfigUpdate::new()
            .name("web-1")
            .ciuser("kiln")
            .ipconfig(
                0,
                &IpConfig::static_v4("10.0.0.5/24", Some("10.0.0.1".parse().unwrap())),
            )
            .nameservers(&["1.1.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()])
            .searchdomain("lab.lan")
            .cicustom(&CiCustom {
                user: Some("local:snippets/web-1.yaml".into()),
                ..CiCustom::default()
            })
            .net(0, &NetDevice::virtio("vmbr0"))
            .tags(&["kiln-lab", "web"])
            .agent(AgentOption {
                enabled: true,
                fstrim_cloned_disks: Some(true),
            })
            .delete("ide2");
        let p = u.params().unwrap();
        assert_eq!(p.get("ipconfig0"), Some("ip=10.0.0.5/24,gw=10.0.0.1"));
        assert_eq!(p.get("nameserver"), Some("1.1.1.1 9.9.9.9"));
        assert_eq!(p.get("cicustom"), Some("user=local:snippets/web-1.yaml"));
        assert_eq!(p.get("net0"), Some("virtio,bridge=vmbr0"));
        assert_eq!(p.get("tags"), Some("kiln-lab;web"));
        assert_eq!(p.get("agent"), Some("1,fstrim_cloned_disks=1"));
        assert_eq!(p.get("delete"), Some("ide2"));
    }

    #[test]
    fn builder_rejects_bad_values() {
        assert!(VmConfigUpdate::new().name("bad_name").params().is_err());
        assert!(VmConfigUpdate::new().tags(&["Bad Tag"]).params().is_err());
        assert!(
            VmConfigUpdate::new()
                .description(&"x".repeat(9000))
                .params()
                .is_err()
        );
        assert!(
            VmConfigUpdate::new()
                .ciuser("a")
                .delete("ciuser")
                .params()
                .is_err()
        );
    }

    #[test]
    fn config_view() {
        let c: VmConfig = serde_json::from_value(serde_json::json!({
            "net0": "virtio=bc:24:11:aa:bb:cc,bridge=vmbr0,firewall=1",
            "ide2": "local-lvm:vm-101-cloudinit,media=cdrom",
            "tags": "kiln-lab;web",
            "template": 1,
            "sshkeys": encode_sshkeys(&["ssh-ed25519 AAAA k@h"]),
        }))
        .unwrap();
        assert_eq!(c.mac(0).as_deref(), Some("BC:24:11:AA:BB:CC"));
        assert!(c.has_cloudinit_drive());
        assert!(c.is_template());
        assert_eq!(c.tags(), ["kiln-lab", "web"]);
        assert_eq!(c.sshkeys(), ["ssh-ed25519 AAAA k@h"]);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the keys hold (comments with any Unicode), the encoded
        /// value passes PVE's `urlencoded` check and decodes back exactly.
        #[test]
        fn sshkeys_round_trip_through_pve_decoding(keys in proptest::collection::vec("[^\n\r]{1,80}", 1..4)) {
            let enc = encode_sshkeys(&keys);
            prop_assert!(Regex::new(r"^[-%a-zA-Z0-9_.!~*'()]*$").unwrap().is_match(&enc));
            let decoded = percent_encoding::percent_decode_str(&enc).decode_utf8().unwrap();
            let trimmed: Vec<&str> = keys.iter().map(|k| k.trim()).collect();
            prop_assert_eq!(decoded, trimmed.join("\n"));
        }
    }
}
