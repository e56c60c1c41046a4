//! The rendered documents of every node of every example inventory, under
//! insta snapshots: the YAML emitter may change between serde-saphyr minors,
//! and a reviewer should see every byte a VM receives change.

mod common;

use kiln_cloud_init::{NodeSeed, render};

fn combined(seed: &NodeSeed) -> String {
    let proxmox = serde_json::to_string_pretty(&seed.proxmox).expect("json");
    let mut text = String::new();
    for (name, body) in seed.documents.files() {
        text.push_str(&format!("===== {name}\n{body}"));
    }
    text.push_str(&format!("===== proxmox-config.json\n{proxmox}\n"));
    for warning in &seed.warnings {
        text.push_str(&format!("===== warning: {warning}\n"));
    }
    text
}

#[test]
fn every_node_of_every_example() {
    let input = common::plain_input();
    let mut not_rendered = String::new();
    for (example, inventory) in common::examples() {
        for node in &inventory.nodes {
            match render(&inventory, node.name.as_str(), &input) {
                Ok(seed) => {
                    insta::assert_snapshot!(format!("{example}__{}", node.name), combined(&seed))
                }
                Err(error) if common::not_cloud_init(&error) => {
                    not_rendered.push_str(&format!("{example}/{}: {error}\n", node.name));
                }
                Err(error) => panic!("{example}/{}: {error}", node.name),
            }
        }
    }
    insta::assert_snapshot!("not_rendered", not_rendered);
}

#[test]
fn every_optional_input_filled_in() {
    let input = common::full_input();
    for (example, node) in [("homelab-k3s", "cp1"), ("minimal", "box")] {
        let inventory = common::examples()
            .into_iter()
            .find(|(stem, _)| stem == example)
            .map(|(_, inventory)| inventory)
            .expect("example");
        let seed = render(&inventory, node, &input).expect("render");
        insta::assert_snapshot!(format!("full__{example}__{node}"), combined(&seed));
    }
}
