//! `cargo xtask bench`: three real guests on the lab's `qemu` backend, from
//! clone to SSH-ready, timed per node from `kiln apply -o json`'s events
//! (TCG on this machine; needs root for the lab's network namespace).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use kiln_e2e::LabHarness;
use serde_json::Value;

const NODES: [(&str, &str, &str); 3] = [
    ("g1", "pve1", "10.77.0.31"),
    ("g2", "pve2", "10.77.0.32"),
    ("g3", "pve1", "10.77.0.33"),
];

fn inventory() -> String {
    let mut text = String::from(
        "cluster: {name: bench, distribution: none}
proxmox:
  endpoint: env:KILN_PROXMOX_ENDPOINT
  auth: {token: env:KILN_PROXMOX_TOKEN}
  tls: {fingerprint: env:KILN_PROXMOX_FINGERPRINT}
  nodes: [pve1, pve2]
  storage: local-lvm
network:
  bridge: vmbr0
  ipv4: {cidr: 10.77.0.0/24, gateway: 10.77.0.1}
images:
  debian-12: {golden: {recipe: debian-12}}
templates:
  debian-12: {image: debian-12, vmids: {pve1: 9000, pve2: 9001}}
defaults: {template: debian-12, cores: 1, memory: 768MiB, disks: [{size: 4GiB}]}
ssh: {user: kiln}
nodes:
",
    );
    for (name, pve, ip) in NODES {
        text.push_str(&format!(
            "  - {{name: {name}, role: host, pve_node: {pve}, ip: {ip}}}\n"
        ));
    }
    text
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()?
        .stdout
        .starts_with(b"0");
    if !is_root {
        println!(
            "real guests, clone to SSH-ready: not measured (needs root for the lab's namespace)"
        );
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace")?
        .to_owned();
    let bin = LabHarness::debug_binaries(&root)?;
    let scratch = tempfile::tempdir()?;
    let inventory_path = scratch.path().join("bench.yaml");
    std::fs::write(&inventory_path, inventory())?;
    let dir = scratch.path().join("lab");
    std::fs::create_dir_all(&dir)?;
    let lab = LabHarness::new(
        &format!("bench{}", std::process::id()),
        &root,
        &dir,
        &bin,
        &inventory_path,
    );
    lab.kiln(&["image", "build", "debian-12"])?;
    lab.start_lab(2, &[])?;
    let measured = measure(&lab);
    lab.down()?;
    let spans = measured?;
    println!("real guests (TCG), clone to SSH-ready, 3 nodes started together:");
    let mut slowest = 0.0f64;
    for (node, seconds) in &spans {
        println!("  {node}: {seconds:.1} s");
        slowest = slowest.max(*seconds);
    }
    println!("  all three SSH-ready after {slowest:.1} s");
    Ok(())
}

/// Seconds from each node's `clone` start to its `wait_ssh` end.
fn measure(lab: &LabHarness) -> Result<BTreeMap<String, f64>, Box<dyn std::error::Error>> {
    lab.in_lab(&["kiln", "image", "ensure", "--yes"])?;
    let output = lab.in_lab_output(&["kiln", "-o", "json", "--yes", "apply"])?;
    if !output.status.success() {
        return Err(format!(
            "kiln apply failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let mut started: BTreeMap<String, u64> = BTreeMap::new();
    let mut spans = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(node), Some(step), Some(at)) = (
            event["node"].as_str(),
            event["step"].as_str(),
            event["at"].as_u64(),
        ) else {
            continue;
        };
        match (event["event"].as_str(), step) {
            (Some("step_started"), "clone") => {
                started.insert(node.to_owned(), at);
            }
            (Some("step_finished"), "wait_ssh") => {
                let from = started.get(node).copied().unwrap_or(at);
                spans.insert(node.to_owned(), (at - from) as f64 / 1000.0);
            }
            _ => {}
        }
    }
    if spans.len() != NODES.len() {
        return Err(format!("only {} of 3 nodes reached SSH: {spans:?}", spans.len()).into());
    }
    Ok(spans)
}
