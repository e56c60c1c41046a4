//! One node's seed: the three NoCloud documents, as structs and as the
//! exact text a VM reads, with the Proxmox keys that deliver them.

use std::fmt;

use kiln_inventory::Inventory;
use kiln_inventory::model::Distribution;
use serde::Serialize;

use crate::error::RenderError;
use crate::input::RenderInput;
use crate::meta_data::MetaData;
use crate::network::NetworkConfig;
use crate::proxmox::{Delivery, ProxmoxConfig, SnippetKind};
use crate::user_data::CloudConfig;

/// NoCloud's file names, in the order kiln writes them.
pub const USER_DATA: &str = "user-data";
pub const META_DATA: &str = "meta-data";
pub const NETWORK_CONFIG: &str = "network-config";

/// The three files as text. `user_data` holds the host private key when
/// kiln supplied one, so `Debug` shows sizes only.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Documents {
    #[serde(rename = "user-data")]
    pub user_data: String,
    #[serde(rename = "meta-data")]
    pub meta_data: String,
    #[serde(rename = "network-config")]
    pub network_config: String,
}

impl Documents {
    /// `(file name, text)` for each NoCloud file.
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            (USER_DATA, &self.user_data),
            (META_DATA, &self.meta_data),
            (NETWORK_CONFIG, &self.network_config),
        ]
    }

    /// The text a `cicustom` snippet of this kind holds.
    pub fn snippet(&self, kind: SnippetKind) -> &str {
        match kind {
            SnippetKind::User => &self.user_data,
            SnippetKind::Network => &self.network_config,
            SnippetKind::Meta => &self.meta_data,
        }
    }
}

impl fmt::Debug for Documents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Documents")
            .field("user_data_bytes", &self.user_data.len())
            .field("meta_data_bytes", &self.meta_data.len())
            .field("network_config_bytes", &self.network_config.len())
            .finish()
    }
}

/// Everything kiln renders for one node.
#[derive(Debug, Clone)]
pub struct NodeSeed {
    pub node: String,
    pub cloud_config: CloudConfig,
    pub meta_data: MetaData,
    pub network: NetworkConfig,
    pub documents: Documents,
    pub proxmox: ProxmoxConfig,
    /// Things an operator should know about this render (no key, no MAC).
    pub warnings: Vec<String>,
}

/// Renders the seed of the node called `node`.
pub fn render(
    inventory: &Inventory,
    node: &str,
    input: &RenderInput,
) -> Result<NodeSeed, RenderError> {
    let found = inventory
        .node(node)
        .ok_or_else(|| RenderError::UnknownNode(node.to_owned()))?;
    if !found.is_vm() {
        return Err(RenderError::BareMetal(node.to_owned()));
    }
    if inventory.cluster.distribution == Distribution::Talos {
        return Err(RenderError::Talos(node.to_owned()));
    }
    let cloud_config = CloudConfig::for_node(inventory, found, input);
    let meta_data = MetaData::for_node(inventory, found, &input.generation);
    let network = NetworkConfig::for_node(inventory, found, input.mac)?;
    let documents = Documents {
        user_data: cloud_config.to_user_data()?,
        meta_data: meta_data.to_yaml()?,
        network_config: network.to_yaml()?,
    };
    let proxmox = ProxmoxConfig::for_node(inventory, found, input, &cloud_config);
    let mut warnings = Vec::new();
    if input.authorized_keys.is_empty() {
        warnings.push(format!(
            "no SSH public key: user `{}` accepts no key, so nobody (kiln included) can log in to `{node}`",
            inventory.ssh_user()
        ));
    }
    if proxmox.delivery == Delivery::Cicustom && inventory.network.dns.is_empty() {
        warnings.push(format!(
            "`network.dns` is empty: `{node}` gets no DNS server (on the cicustom path nothing falls back to the PVE host's)"
        ));
    }
    // On the native path PVE writes its own network config, matched by
    // net0's MAC, so only kiln's own document can miss the MAC.
    if proxmox.delivery == Delivery::Cicustom && !network.matched_by_mac() {
        warnings.push(format!(
            "`{node}` has no MAC: network-config matches the first NIC named `e*`; set `mac` in the inventory or render with the MAC Proxmox assigned to net0 to match by MAC"
        ));
    }
    Ok(NodeSeed {
        node: node.to_owned(),
        cloud_config,
        meta_data,
        network,
        documents,
        proxmox,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Generation;
    use crate::testing::{ED25519, inventory};

    #[test]
    fn nodes_that_take_no_cloud_config_are_refused_by_name() {
        let home = inventory("homelab-k3s.yaml");
        let input = RenderInput::default();
        assert!(
            matches!(render(&home, "nope", &input), Err(RenderError::UnknownNode(n)) if n == "nope")
        );
        assert!(matches!(
            render(&home, "nuc1", &input),
            Err(RenderError::BareMetal(_))
        ));
        let talos = inventory("homelab-talos.yaml");
        assert!(matches!(
            render(&talos, "cp1", &input),
            Err(RenderError::Talos(_))
        ));
    }

    #[test]
    fn a_render_without_keys_or_mac_says_so() {
        let lab = inventory("lab.yaml");
        let seed = render(&lab, "lab1", &RenderInput::default()).unwrap();
        assert_eq!(seed.warnings.len(), 2);
        assert!(seed.warnings[0].contains("no SSH public key"));
        let keyed = RenderInput {
            authorized_keys: vec![ED25519.parse().unwrap()],
            mac: Some("BC:24:11:00:00:01".parse().unwrap()),
            generation: Generation::from(2),
            ..RenderInput::default()
        };
        let seed = render(&lab, "lab1", &keyed).unwrap();
        assert!(seed.warnings.is_empty(), "{:?}", seed.warnings);
        assert!(seed.documents.meta_data.contains("kiln-lab-lab1-2"));
    }

    #[test]
    fn snippets_hold_the_matching_documents() {
        let lab = inventory("lab.yaml");
        let seed = render(&lab, "lab2", &RenderInput::default()).unwrap();
        for snippet in &seed.proxmox.snippets {
            let text = seed.documents.snippet(snippet.kind);
            let expected = match snippet.kind {
                SnippetKind::User => USER_DATA,
                SnippetKind::Network => NETWORK_CONFIG,
                SnippetKind::Meta => META_DATA,
            };
            let (_, file_text) = seed
                .documents
                .files()
                .into_iter()
                .find(|(name, _)| *name == expected)
                .unwrap();
            assert_eq!(text, file_text);
        }
        assert!(format!("{:?}", seed.documents).contains("user_data_bytes"));
    }
}
