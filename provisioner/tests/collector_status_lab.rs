//! `kiln status` with Proxmox reachable: VMIDs come from the sim lab (a PVE
//! emulator held to the official schema) next to the collector's states.
//! Passes against the emulator; a real PVE answers the same calls.

#![allow(clippy::unwrap_used)]

mod collector_common;
mod proxmox_common;
mod sim_inventory;

use std::path::Path;

use collector_common::{Running, healthy};
use kiln_lab::LabConfig;
use proxmox_common::start_lab;

fn kiln(
    lab: &kiln_lab::RunningLab,
    state: &Path,
    inventory: &Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .args(args)
        .arg("-i")
        .arg(inventory)
        .env("KILN_PROXMOX_ENDPOINT", &lab.endpoint)
        .env("KILN_PROXMOX_FINGERPRINT", &lab.fingerprint)
        .env("KILN_PROXMOX_TOKEN", lab.token())
        .env("KILN_STATE_DIR", state.join("state"))
        .env("KILN_CONFIG_DIR", state.join("config"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

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

    let (lab_ref, state_path, inventory_ref) =
        (&lab, state.path().to_owned(), inventory_path.clone());
    let (code, out, error) =
        tokio::task::block_in_place(|| kiln(lab_ref, &state_path, &inventory_ref, &["apply"]));
    assert_eq!(code, Some(0), "{out}{error}");

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
    let (code, json, error) =
        tokio::task::block_in_place(|| kiln(&lab, state.path(), &inventory_path, &args));
    assert_eq!(code, Some(0), "{error}");
    assert!(!error.contains("VMIDs shown as `-`"), "{error}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
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
