//! Properties: what kiln writes it reads back the same; no input panics the
//! parser, and every error points inside the file.

use std::net::Ipv4Addr;

use kiln_inventory::model::{Cluster, Distribution, Inventory, Ipv4Network, Network, Node, Role};
use proptest::prelude::*;

const LAB: &str = include_str!("../examples/lab.yaml");

fn node(index: usize, cores: u32, memory_mib: u64, tags: Vec<String>) -> Node {
    let yaml = format!(
        "name: n{index}\nrole: host\nip: 10.1.{}.{}\ncores: {cores}\nmemory: {memory_mib}MiB\npve_node: pve1\ntemplate: debian-12\n",
        index / 200,
        10 + index % 200
    );
    let mut node: Node = serde_saphyr::from_str(&yaml).expect("node");
    node.tags = tags
        .into_iter()
        .map(|tag| tag.parse().expect("tag"))
        .collect();
    node
}

fn inventory(name: String, nodes: Vec<(u32, u64, Vec<String>)>) -> Inventory {
    let mut base = kiln_inventory::parse("lab.yaml", LAB).expect("lab example");
    base.cluster = Cluster {
        name: name.parse().expect("label"),
        distribution: Distribution::None,
        version: None,
        api_endpoint: None,
        domain: None,
    };
    base.network = Network {
        ipv4: Ipv4Network {
            cidr: "10.1.0.0/16".parse().expect("cidr"),
            gateway: Ipv4Addr::new(10, 1, 0, 1),
        },
        ..base.network
    };
    base.profiles.clear();
    base.nodes = nodes
        .into_iter()
        .enumerate()
        .map(|(index, (cores, memory, tags))| node(index, cores, memory, tags))
        .collect();
    base
}

fn inventories() -> impl Strategy<Value = Inventory> {
    let name = "[a-z][a-z0-9-]{0,20}[a-z0-9]";
    let node = (
        1u32..=64,
        256u64..=65536,
        prop::collection::vec("[a-z0-9_][a-z0-9_.+-]{0,8}", 0..3),
    );
    (name, prop::collection::vec(node, 1..12)).prop_map(|(name, nodes)| inventory(name, nodes))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn serialize_then_parse_round_trips(inventory in inventories()) {
        prop_assert_eq!(inventory.nodes.iter().all(|node| node.role == Role::Host), true);
        let yaml = serde_saphyr::to_string(&inventory).expect("serialize");
        let parsed = kiln_inventory::parse("round-trip.yaml", &yaml)
            .map_err(|error| TestCaseError::fail(format!("{}\n---\n{yaml}", error.render(false))))?;
        prop_assert_eq!(parsed, inventory);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = kiln_inventory::parse("fuzz.yaml", &text);
    }

    #[test]
    fn mutated_examples_never_panic_and_point_inside_the_file(
        edits in prop::collection::vec((0usize..4000, 0u8..3, "[ -~\n\t:\\-\\[\\]{}#&*!|>'\"%@`]{0,3}"), 1..6)
    ) {
        let mut text = LAB.to_owned();
        for (position, kind, insert) in edits {
            let at = text.char_indices().map(|(byte, _)| byte).nth(position % text.chars().count().max(1)).unwrap_or(0);
            match kind {
                0 => text.insert_str(at, &insert),
                1 => { text.replace_range(at..(at + 1).min(text.len()), ""); }
                _ => text.replace_range(at..(at + 1).min(text.len()), &insert),
            }
        }
        if let Err(error) = kiln_inventory::parse("mutated.yaml", &text) {
            prop_assert!(!error.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for located in error.located() {
                prop_assert!(located.line >= 1 && located.line <= lines, "{located} is outside the file ({lines} lines)");
                prop_assert!(located.column >= 1, "{located}");
            }
            let rendered = error.render(false);
            prop_assert!(rendered.contains("mutated.yaml:"));
        }
    }
}

#[test]
fn every_example_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(dir).expect("examples") {
        let path = entry.expect("entry").path();
        let inventory = kiln_inventory::load(&path).expect("example validates");
        let yaml = serde_saphyr::to_string(&inventory).expect("serialize");
        let parsed = kiln_inventory::parse("round-trip.yaml", &yaml)
            .unwrap_or_else(|error| panic!("{}: {}\n{yaml}", path.display(), error.render(false)));
        assert_eq!(parsed, inventory, "{}", path.display());
    }
}
