//! `meta-data`: who the instance is. cloud-init runs its once-per-instance
//! modules (users, host keys, packages) again only when `instance-id`
//! changes, so the id follows the node's generation and nothing else: a
//! reboot or a config tweak keeps it, a replacement changes it.

use kiln_inventory::Inventory;
use kiln_inventory::model::Node;
use serde::{Deserialize, Serialize};

use crate::error::RenderError;
use crate::input::Generation;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaData {
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    #[serde(rename = "local-hostname")]
    pub local_hostname: String,
}

impl MetaData {
    pub fn for_node(inventory: &Inventory, node: &Node, generation: &Generation) -> Self {
        Self {
            instance_id: instance_id(inventory, node, generation),
            local_hostname: node.name.to_string(),
        }
    }

    pub fn to_yaml(&self) -> Result<String, RenderError> {
        crate::yaml::emit(self, "meta-data")
    }
}

/// `kiln-<cluster>-<node>-<generation>`: readable in `cloud-init query`
/// output, unique per cluster, node and incarnation.
pub fn instance_id(inventory: &Inventory, node: &Node, generation: &Generation) -> String {
    format!("kiln-{}-{}-{generation}", inventory.cluster.name, node.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::inventory;

    #[test]
    fn instance_id_changes_with_the_generation_only() {
        let lab = inventory("lab.yaml");
        let node = lab.node("lab1").unwrap();
        let first = MetaData::for_node(&lab, node, &Generation::from(1));
        let again = MetaData::for_node(&lab, node, &Generation::from(1));
        let replaced = MetaData::for_node(&lab, node, &Generation::from(2));
        assert_eq!(first, again);
        assert_eq!(first.instance_id, "kiln-lab-lab1-1");
        assert_ne!(first.instance_id, replaced.instance_id);
        assert_eq!(first.local_hostname, "lab1");
    }

    #[test]
    fn meta_data_uses_cloud_init_key_names() {
        let lab = inventory("lab.yaml");
        let yaml = MetaData::for_node(&lab, lab.node("lab2").unwrap(), &Generation::from(4))
            .to_yaml()
            .unwrap();
        assert_eq!(yaml, "instance-id: kiln-lab-lab2-4\nlocal-hostname: lab2\n");
    }
}
