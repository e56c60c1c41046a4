//! How a node's cloud-init data reaches Proxmox: the VM config keys kiln
//! sends (`POST /nodes/{node}/qemu/{vmid}/config`) and, on the `cicustom`
//! path, the snippet files it uploads first.
//!
//! The inventory chooses: with `proxmox.snippets_storage`, kiln uploads the
//! three documents it rendered as snippets and points `cicustom` at them, so
//! the VM gets exactly what `kiln render` shows (packages, files, commands,
//! host keys, kiln's instance-id). Without it, kiln sets PVE's native `ci*`
//! keys and PVE generates the documents itself, which carry only the user,
//! its keys, the address and DNS; what that path cannot carry is listed in
//! [`ProxmoxConfig::not_delivered`].

use std::collections::BTreeMap;

use kiln_inventory::Inventory;
use kiln_inventory::model::Node;
use kiln_inventory::values::StorageId;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use crate::input::{RenderInput, SshPublicKey};
use crate::user_data::CloudConfig;

/// The bytes PVE's `urlencoded` format (`^[-%a-zA-Z0-9_.!~*'()]*$`) allows
/// unescaped: JavaScript's `encodeURIComponent` set, which PVE's own UI uses.
/// Everything else, space and newline included, becomes `%XX` (never `+`).
const PVE_URLENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// PVE's `ci*` keys; PVE renders the documents.
    Native,
    /// kiln's documents as snippets, referenced by `cicustom`.
    Cicustom,
}

/// A VM config key kiln sets for cloud-init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PveKey {
    Citype,
    Ciuser,
    Sshkeys,
    Ipconfig0,
    Nameserver,
    Searchdomain,
    Ciupgrade,
    Cicustom,
}

impl PveKey {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Citype => "citype",
            Self::Ciuser => "ciuser",
            Self::Sshkeys => "sshkeys",
            Self::Ipconfig0 => "ipconfig0",
            Self::Nameserver => "nameserver",
            Self::Searchdomain => "searchdomain",
            Self::Ciupgrade => "ciupgrade",
            Self::Cicustom => "cicustom",
        }
    }
}

/// Which document a snippet holds, and its `cicustom` part name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnippetKind {
    User,
    Network,
    Meta,
}

impl SnippetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Network => "network",
            Self::Meta => "meta",
        }
    }
}

/// A snippet file kiln uploads over SSH to `<storage path>/snippets/<file_name>`
/// on the PVE node that runs the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub kind: SnippetKind,
    pub storage: String,
    pub file_name: String,
    /// `<storage>:snippets/<file_name>`, as `cicustom` names it.
    pub volid: String,
}

/// What kiln sends Proxmox for one node's cloud-init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxmoxConfig {
    pub delivery: Delivery,
    /// Config keys and values, as PVE takes them (before form encoding).
    pub keys: BTreeMap<PveKey, String>,
    /// Keys to remove in the same request (`delete=`), so that a value the
    /// template carries cannot override this path. PVE skips a key the
    /// config does not have, warning `cannot delete '<key>' - not set in
    /// current configuration!` (an async update then ends `WARNINGS: 1`,
    /// which is success); a caller that read the config may drop those.
    pub delete: Vec<PveKey>,
    /// Snippet files to upload before the keys are set (`cicustom` only).
    pub snippets: Vec<Snippet>,
    /// What kiln rendered that this path does not deliver to the VM.
    pub not_delivered: Vec<String>,
}

impl ProxmoxConfig {
    /// The path the inventory allows: `cicustom` when it names a snippets
    /// storage, else the native keys.
    pub fn for_node(
        inventory: &Inventory,
        node: &Node,
        input: &RenderInput,
        user_data: &CloudConfig,
    ) -> Self {
        match inventory
            .proxmox
            .as_ref()
            .and_then(|proxmox| proxmox.snippets_storage.as_ref())
        {
            Some(storage) => Self::cicustom(inventory, node, storage),
            None => Self::native(inventory, node, input, user_data),
        }
    }

    /// PVE's own keys. The address and DNS come from the inventory, as in
    /// `network-config`; PVE matches the NIC by `net0`'s MAC itself, so the
    /// MAC needs no key.
    pub fn native(
        inventory: &Inventory,
        node: &Node,
        input: &RenderInput,
        user_data: &CloudConfig,
    ) -> Self {
        let mut keys = BTreeMap::from([
            (PveKey::Citype, "nocloud".to_owned()),
            (PveKey::Ciuser, inventory.ssh_user().to_owned()),
            (PveKey::Ipconfig0, ipconfig0(inventory, node)),
            // PVE defaults ciupgrade to 1: say what kiln wants either way.
            (
                PveKey::Ciupgrade,
                u8::from(input.package_upgrade).to_string(),
            ),
        ]);
        let mut delete = vec![PveKey::Cicustom];
        if input.authorized_keys.is_empty() {
            // A clone inherits the template's keys: none means none.
            delete.push(PveKey::Sshkeys);
        } else {
            keys.insert(PveKey::Sshkeys, encode_sshkeys(&input.authorized_keys));
        }
        let dns = &inventory.network.dns;
        if !dns.is_empty() {
            let servers: Vec<String> = dns.iter().map(ToString::to_string).collect();
            keys.insert(PveKey::Nameserver, servers.join(" "));
        }
        if let Some(search) = &inventory.network.search_domain {
            keys.insert(PveKey::Searchdomain, search.to_string());
        }
        let mut not_delivered = Vec::new();
        if !user_data.packages.is_empty() {
            not_delivered.push(format!("packages ({})", user_data.packages.join(", ")));
        }
        if !user_data.write_files.is_empty() {
            not_delivered.push(format!("write_files ({})", user_data.write_files.len()));
        }
        if !user_data.runcmd.is_empty() {
            not_delivered.push(format!("runcmd ({})", user_data.runcmd.len()));
        }
        if user_data.ssh_keys.is_some() {
            not_delivered.push("ssh_keys (the host key)".to_owned());
        }
        // PVE's FQDN is `<VM name>.<searchdomain>`: the same as kiln's only
        // when the search domain is the cluster's domain.
        if let Some(domain) = &inventory.cluster.domain
            && inventory.network.search_domain.as_ref() != Some(domain)
        {
            not_delivered
                .push("fqdn (PVE derives it from the VM name and searchdomain)".to_owned());
        }
        if inventory.network.mtu.is_some() {
            not_delivered.push("mtu".to_owned());
        }
        not_delivered
            .push("instance-id (PVE derives it from a hash of the generated config)".to_owned());
        Self {
            delivery: Delivery::Native,
            keys,
            delete,
            snippets: Vec::new(),
            not_delivered,
        }
    }

    /// kiln's three documents as snippets on `storage`.
    pub fn cicustom(inventory: &Inventory, node: &Node, storage: &StorageId) -> Self {
        let snippets: Vec<Snippet> = [SnippetKind::User, SnippetKind::Network, SnippetKind::Meta]
            .into_iter()
            .map(|kind| {
                let file_name = snippet_file_name(inventory, node, kind);
                Snippet {
                    kind,
                    storage: storage.to_string(),
                    volid: format!("{storage}:snippets/{file_name}"),
                    file_name,
                }
            })
            .collect();
        let cicustom: Vec<String> = snippets
            .iter()
            .map(|snippet| format!("{}={}", snippet.kind.as_str(), snippet.volid))
            .collect();
        Self {
            delivery: Delivery::Cicustom,
            keys: BTreeMap::from([
                (PveKey::Citype, "nocloud".to_owned()),
                (PveKey::Cicustom, cicustom.join(",")),
            ]),
            delete: Vec::new(),
            snippets,
            not_delivered: Vec::new(),
        }
    }

    /// The keys as form parameters, `delete` included when non-empty.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params: Vec<(&'static str, String)> = self
            .keys
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect();
        if !self.delete.is_empty() {
            let delete: Vec<&str> = self.delete.iter().map(|key| key.as_str()).collect();
            params.push(("delete", delete.join(",")));
        }
        params
    }
}

/// `kiln-<cluster>-<node>-<kind>.yaml`: unique per cluster on a shared
/// snippets storage, and recognisably kiln's.
pub fn snippet_file_name(inventory: &Inventory, node: &Node, kind: SnippetKind) -> String {
    format!(
        "kiln-{}-{}-{}.yaml",
        inventory.cluster.name,
        node.name,
        kind.as_str()
    )
}

/// `ip=<v4>/<len>,gw=<gw>[,ip6=<v6>/<len>][,gw6=<gw6>]`.
pub fn ipconfig0(inventory: &Inventory, node: &Node) -> String {
    let network = &inventory.network;
    let mut value = format!(
        "ip={}/{},gw={}",
        node.ip,
        inventory.ipv4_prefix(),
        network.ipv4.gateway
    );
    if let (Some(ipv6), Some(prefix)) = (node.ipv6, inventory.ipv6_prefix()) {
        value.push_str(&format!(",ip6={ipv6}/{prefix}"));
        if let Some(gateway) = network.ipv6.as_ref().and_then(|v6| v6.gateway) {
            value.push_str(&format!(",gw6={gateway}"));
        }
    }
    value
}

/// The `sshkeys` value: keys joined by newlines, then percent-encoded the
/// way PVE decodes it (`%20` for spaces, `%0A` for newlines).
pub fn encode_sshkeys(keys: &[SshPublicKey]) -> String {
    let joined: Vec<&str> = keys.iter().map(SshPublicKey::as_str).collect();
    utf8_percent_encode(&joined.join("\n"), PVE_URLENCODED).to_string()
}

#[cfg(test)]
mod tests {
    use percent_encoding::percent_decode_str;

    use super::*;
    use crate::input::Generation;
    use crate::testing::{ED25519, inventory};

    const RSA_WITH_CARDNO: &str = include_str!("../tests/fixtures/operator_rsa.pub");

    fn input() -> RenderInput {
        RenderInput {
            authorized_keys: vec![ED25519.parse().unwrap(), RSA_WITH_CARDNO.parse().unwrap()],
            generation: Generation::from(1),
            ..RenderInput::default()
        }
    }

    fn pve_urlencoded(value: &str) -> bool {
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b))
    }

    #[test]
    fn sshkeys_match_pve_format_and_decode_to_the_keys() {
        let keys = input().authorized_keys;
        let encoded = encode_sshkeys(&keys);
        assert!(pve_urlencoded(&encoded), "{encoded}");
        assert!(encoded.contains("%20") && encoded.contains("%0A"));
        assert!(!encoded.contains('+'));
        assert!(encoded.contains("cardno%3A000611"));
        let decoded = percent_decode_str(&encoded).decode_utf8().unwrap();
        assert_eq!(decoded, format!("{ED25519}\n{}", RSA_WITH_CARDNO.trim()));
    }

    proptest::proptest! {
        /// Any comment a key can carry (spaces, `:`, `@`, `+`, `%`, UTF-8)
        /// stays inside PVE's alphabet and decodes back to the same keys.
        #[test]
        fn sshkeys_encoding_is_safe_and_lossless(comments in proptest::collection::vec("[^\\p{Cc}]{0,40}", 1..4)) {
            let keys: Vec<SshPublicKey> = comments
                .iter()
                .map(|comment| {
                    let base = ED25519.rsplit_once(' ').unwrap().0;
                    format!("{base} {comment}").parse().unwrap()
                })
                .collect();
            let encoded = encode_sshkeys(&keys);
            proptest::prop_assert!(pve_urlencoded(&encoded), "{}", encoded);
            let decoded = percent_decode_str(&encoded).decode_utf8().unwrap();
            let lines: Vec<&str> = keys.iter().map(SshPublicKey::as_str).collect();
            proptest::prop_assert_eq!(decoded, lines.join("\n"));
        }
    }

    fn native_for(example: &str, name: &str) -> ProxmoxConfig {
        let inventory = inventory(example);
        let node = inventory.node(name).unwrap();
        let input = input();
        let user_data = CloudConfig::for_node(&inventory, node, &input);
        ProxmoxConfig::native(&inventory, node, &input, &user_data)
    }

    #[test]
    fn native_keys_carry_address_dns_user_and_upgrade() {
        let config = native_for("homelab-k3s.yaml", "cp1");
        assert_eq!(
            config.keys[&PveKey::Ipconfig0],
            "ip=10.20.0.11/24,gw=10.20.0.1,ip6=fd00:20::11/64,gw6=fd00:20::1"
        );
        assert_eq!(config.keys[&PveKey::Nameserver], "10.20.0.1 1.1.1.1");
        assert_eq!(config.keys[&PveKey::Searchdomain], "home.arpa");
        assert_eq!(config.keys[&PveKey::Ciuser], "kiln");
        assert_eq!(config.keys[&PveKey::Ciupgrade], "0");
        assert_eq!(config.delete, [PveKey::Cicustom]);
        let params = config.params();
        assert_eq!(params.last().unwrap(), &("delete", "cicustom".to_owned()));
    }

    #[test]
    fn native_path_without_keys_removes_the_template_keys() {
        let tiny = inventory("minimal.yaml");
        let node = tiny.node("box").unwrap();
        let input = RenderInput::default();
        let user_data = CloudConfig::for_node(&tiny, node, &input);
        let config = ProxmoxConfig::native(&tiny, node, &input, &user_data);
        assert!(!config.keys.contains_key(&PveKey::Sshkeys));
        assert_eq!(config.delete, [PveKey::Cicustom, PveKey::Sshkeys]);
        assert!(
            config
                .params()
                .contains(&("delete", "cicustom,sshkeys".to_owned()))
        );
    }

    #[test]
    fn native_fqdn_is_lost_only_when_the_search_domain_differs() {
        let mut lab = inventory("lab.yaml");
        if let Some(proxmox) = lab.proxmox.as_mut() {
            proxmox.snippets_storage = None;
        }
        let lost = |inventory: &Inventory| {
            let node = inventory.node("lab1").unwrap();
            let input = input();
            let user_data = CloudConfig::for_node(inventory, node, &input);
            let config = ProxmoxConfig::for_node(inventory, node, &input, &user_data);
            assert_eq!(config.delivery, Delivery::Native);
            config
                .not_delivered
                .iter()
                .any(|what| what.starts_with("fqdn"))
        };
        assert!(!lost(&lab));
        lab.network.search_domain = None;
        assert!(lost(&lab));
    }

    #[test]
    fn native_path_lists_what_it_cannot_deliver() {
        let tiny = native_for("minimal.yaml", "box");
        assert_eq!(
            tiny.keys[&PveKey::Ipconfig0],
            "ip=192.168.1.50/24,gw=192.168.1.1"
        );
        assert!(!tiny.keys.contains_key(&PveKey::Nameserver));
        assert!(
            tiny.not_delivered
                .iter()
                .any(|what| what.starts_with("packages (qemu-guest-agent"))
        );
    }

    #[test]
    fn snippets_storage_selects_cicustom_with_kiln_file_names() {
        let lab = inventory("lab.yaml");
        let node = lab.node("lab3").unwrap();
        let input = input();
        let user_data = CloudConfig::for_node(&lab, node, &input);
        let config = ProxmoxConfig::for_node(&lab, node, &input, &user_data);
        assert_eq!(config.delivery, Delivery::Cicustom);
        assert_eq!(
            config.keys[&PveKey::Cicustom],
            "user=local:snippets/kiln-lab-lab3-user.yaml,network=local:snippets/kiln-lab-lab3-network.yaml,meta=local:snippets/kiln-lab-lab3-meta.yaml"
        );
        assert_eq!(config.snippets[1].file_name, "kiln-lab-lab3-network.yaml");
        assert!(config.not_delivered.is_empty());
    }
}
