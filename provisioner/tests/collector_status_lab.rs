//! `kiln status` with Proxmox reachable: VMIDs come from the sim lab (a PVE
//! emulator held to the official schema) next to the collector's states.
//! Passes against the emulator; a real PVE answers the same calls.

#![allow(clippy::unwrap_used)]

#[path = "../../collector/tests/collector_common/mod.rs"]
mod collector_common;
#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
mod sim_inventory;

use collector_common::{Running, healthy};
use kiln_lab::LabConfig;
use proxmox_common::start_lab;
use sim_inventory::cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_joins_vmids_from_proxmox_with_the_collector_states() {
    let lab = start_lab(LabConfig::default()).await;
    lab.add_template("pve2", 9001, "debian-12-kiln").unwrap();
    let state = tempfile::tempdir().unwrap();
    let text = sim_inventory::lab_yaml();
    let inventory_path = state.path().join("lab.yaml");
    std::fs::write(&inventory_path, &text).unwrap();
    let inventory = kiln_inventory::parse("lab.yaml", &text).unwrap();
    let cluster = inventory.cluster.name.as_str().to_owned();
    let first = inventory.nodes[0].name.as_str().to_owned();

    let run = cli::kiln(&lab, state.path(), &inventory_path, &["apply"], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.output());

    let collector = Running::start(|_| {}).await;
    let token = collector.registry.issue(&cluster, &first).unwrap();
    let mut report = healthy(&first, 1);
    report.cluster = cluster.clone();
    assert_eq!(collector.send(&token, &report).await.0, 202);

    let fingerprint = collector.fingerprint.to_string();
    let args = [
        "status",
        "-o",
        "json",
        "--collector",
        collector.url.as_str(),
        "--collector-fingerprint",
        fingerprint.as_str(),
    ];
    let run = cli::kiln(&lab, state.path(), &inventory_path, &args, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("VMIDs shown as `-`"), "{}", run.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows.len(), inventory.nodes.len());
    for row in &rows {
        let node = inventory
            .nodes
            .iter()
            .find(|node| node.name.as_str() == row["node"])
            .unwrap();
        if node.is_vm() {
            assert!(
                row["vmid"].as_u64().is_some_and(|vmid| vmid >= 100),
                "{row}"
            );
            assert!(row["pve_node"].is_string(), "{row}");
        }
    }
    assert_eq!(rows[0]["state"], "healthy");
    assert_eq!(rows[1]["state"], "no token");
}
