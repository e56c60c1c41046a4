//! Lookups over a validated inventory that several consumers share: a node
//! by name, its FQDN, the template and image it is cloned from, and the
//! network prefixes its addresses live in.

use crate::model::{Image, Inventory, Node, Template};
use crate::values::Label;

/// The SSH user cloud-init creates when the inventory has no `ssh` section;
/// the same default `ssh.user` takes.
const DEFAULT_SSH_USER: &str = "kiln";

impl Inventory {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.name.as_str() == name)
    }

    /// `<name>.<cluster.domain>`, or `None` when the cluster has no domain.
    pub fn fqdn(&self, node: &Node) -> Option<String> {
        self.cluster
            .domain
            .as_ref()
            .map(|domain| format!("{}.{domain}", node.name))
    }

    /// The template a VM node is cloned from (its own, else `defaults.template`).
    pub fn template_of(&self, node: &Node) -> Option<(&Label, &Template)> {
        let name = node.template.as_ref().or(self.defaults.template.as_ref())?;
        self.templates.get_key_value(name)
    }

    /// The image behind the template a VM node is cloned from.
    pub fn image_of(&self, node: &Node) -> Option<(&Label, &Image)> {
        let (_, template) = self.template_of(node)?;
        self.images.get_key_value(&template.image)
    }

    /// The user kiln logs in as on VMs (`ssh.user`, default `kiln`).
    pub fn ssh_user(&self) -> &str {
        self.ssh
            .as_ref()
            .map_or(DEFAULT_SSH_USER, |ssh| ssh.user.as_str())
    }

    /// The prefix length of the cluster's IPv4 network (`24` for `10.0.0.0/24`).
    pub fn ipv4_prefix(&self) -> u8 {
        self.network.ipv4.cidr.0.prefix_len()
    }

    /// The prefix length of the cluster's IPv6 network, when it has one.
    pub fn ipv6_prefix(&self) -> Option<u8> {
        self.network
            .ipv6
            .as_ref()
            .map(|network| network.cidr.0.prefix_len())
    }
}

#[cfg(test)]
mod tests {
    use crate::Inventory;

    const TEXT: &str = r#"
cluster: {name: demo, domain: lab.example.org}
proxmox:
  endpoint: https://pve.example.org:8006
  auth: {token: env:PVE_TOKEN}
  nodes: [pve]
network:
  ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}
  ipv6: {cidr: "fd00:10::/64"}
images:
  golden: {golden: {recipe: debian-12}}
  cloud: {url: https://example.org/debian.qcow2, checksum_url: https://example.org/SHA512SUMS}
templates:
  golden: {image: golden, vmids: {pve: 9000}}
  cloud: {image: cloud, vmids: {pve: 9001}}
defaults: {template: golden}
nodes:
  - {name: a, role: host, pve_node: pve, ip: 10.0.0.11}
  - {name: b, role: host, pve_node: pve, ip: 10.0.0.12, template: cloud}
"#;

    fn load(text: &str) -> Inventory {
        match crate::parse("test.yaml", text) {
            Ok(inventory) => inventory,
            Err(error) => panic!("{}", error.render(false)),
        }
    }

    #[test]
    fn nodes_are_found_by_name() {
        let inventory = load(TEXT);
        assert_eq!(
            inventory.node("b").map(|node| node.name.as_str()),
            Some("b")
        );
        assert!(inventory.node("c").is_none());
    }

    #[test]
    fn fqdn_joins_the_cluster_domain() {
        let inventory = load(TEXT);
        let node = &inventory.nodes[0];
        assert_eq!(inventory.fqdn(node).as_deref(), Some("a.lab.example.org"));
        let without = load(&TEXT.replace(", domain: lab.example.org", ""));
        assert_eq!(without.fqdn(&without.nodes[0]), None);
    }

    #[test]
    fn templates_and_images_follow_defaults_unless_the_node_overrides() {
        let inventory = load(TEXT);
        let (template, _) = inventory.template_of(&inventory.nodes[0]).unwrap();
        assert_eq!(template.as_str(), "golden");
        let (image, found) = inventory.image_of(&inventory.nodes[0]).unwrap();
        assert_eq!(image.as_str(), "golden");
        assert!(found.golden.is_some());
        let (image, found) = inventory.image_of(&inventory.nodes[1]).unwrap();
        assert_eq!(image.as_str(), "cloud");
        assert!(found.url.is_some());
    }

    #[test]
    fn ssh_user_defaults_to_kiln() {
        let inventory = load(TEXT);
        assert_eq!(inventory.ssh_user(), "kiln");
        let custom = load(&format!("{TEXT}ssh: {{user: ops}}\n"));
        assert_eq!(custom.ssh_user(), "ops");
    }

    #[test]
    fn prefixes_come_from_the_cidrs() {
        let inventory = load(TEXT);
        assert_eq!(inventory.ipv4_prefix(), 24);
        assert_eq!(inventory.ipv6_prefix(), Some(64));
    }
}
