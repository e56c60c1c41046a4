//! Faults from a seeded YAML file: the same seed gives the same faults for the same
//! requests; injected errors carry PVE's messages; connections can be dropped. The fault
//! messages are PVE's, but the injection itself exists only in the emulator.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use kiln_lab_pve::{FaultConfig, LabConfig};

const FAULTS: &str = "\
seed: SEED
operations:
  clone:
    error_rate: 0.3
    errors: [\"500\", cant_lock, got_timeout, no_worker_upid]
    task_failure_rate: 0.3
    task_ms: 10
  nextid:
    error_rate: 0.5
    errors: [got_timeout]
";

async fn run(seed: u64) -> Vec<String> {
    let faults = FaultConfig::from_yaml(&FAULTS.replace("SEED", &seed.to_string())).unwrap();
    let lab = common::start(LabConfig {
        faults: Some(faults),
        ..LabConfig::default()
    })
    .await;
    assert_eq!(lab.lab.fault_seed, Some(seed));
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    let mut outcomes = Vec::new();
    for i in 0..24u32 {
        let nextid = lab.get("/cluster/nextid").await;
        outcomes.push(format!("nextid {} {}", nextid.status, nextid.reason));
        let newid = (200 + i).to_string();
        let clone = lab
            .post("/nodes/pve1/qemu/9000/clone", &[("newid", newid.as_str())])
            .await;
        if clone.status == 200 {
            let status = lab.wait(clone.body["data"].as_str().unwrap()).await;
            outcomes.push(format!("clone task {}", status["exitstatus"]));
        } else {
            outcomes.push(format!("clone {} {}", clone.status, clone.reason));
        }
    }
    outcomes
}

#[tokio::test]
async fn faults_are_reproducible_for_a_seed() {
    let first = run(42).await;
    let second = run(42).await;
    println!("seed 42: {first:#?}");
    assert_eq!(first, second, "same seed, different faults");
    let other = run(43).await;
    assert_ne!(first, other, "seeds 42 and 43 gave the same faults");
    // The injected failures carry PVE's messages.
    let all = first.join("\n");
    assert!(all.contains("got timeout"), "{all}");
    assert!(
        all.contains("clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"),
        "{all}"
    );
    assert!(all.contains("clone task \"OK\""), "{all}");
}

#[tokio::test]
async fn failed_clone_tasks_leave_no_vm_and_no_lock() {
    let yaml = "seed: 5\noperations:\n  clone:\n    task_failure_rate: 1.0\n    task_errors: [storage_lock]\n";
    let lab = common::start(LabConfig {
        faults: Some(FaultConfig::from_yaml(yaml).unwrap()),
        ..LabConfig::default()
    })
    .await;
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    let clone = lab
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "300")])
        .await;
    let status = lab.wait(clone.body["data"].as_str().unwrap()).await;
    assert_eq!(
        status["exitstatus"],
        "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
    );
    let resources = lab.get("/cluster/resources?type=vm").await;
    let vms = resources.body["data"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{vms:?}");
    assert!(vms[0].get("lock").is_none());
}

#[tokio::test]
async fn dropped_connections_and_latency() {
    let yaml =
        "seed: 1\noperations:\n  version:\n    drop_rate: 1.0\n  nodes:\n    latency_ms: 300\n";
    let lab = common::start(LabConfig {
        faults: Some(FaultConfig::from_yaml(yaml).unwrap()),
        ..LabConfig::default()
    })
    .await;
    let dropped = lab
        .http
        .get(lab.url("/version"))
        .header("Authorization", format!("PVEAPIToken={}", lab.lab.token()))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection should have been dropped");
    assert_eq!(lab.lab.requests()[0].status, 0);
    let started = std::time::Instant::now();
    let nodes = lab.get("/nodes").await;
    assert_eq!(nodes.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(nodes.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_broken_boot_vm_never_gets_its_guest_agent_up() {
    let faults =
        FaultConfig::from_yaml("seed: 1\nboot_to_agent_ms: 10\nbroken_boot_vmids: [9200]\n")
            .unwrap();
    let lab = common::start(LabConfig {
        faults: Some(faults),
        ..LabConfig::default()
    })
    .await;
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    for vmid in ["9200", "9201"] {
        lab.ok_task(
            lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", vmid)])
                .await,
        )
        .await;
        lab.ok_task(
            lab.post(&format!("/nodes/pve1/qemu/{vmid}/status/start"), &[])
                .await,
        )
        .await;
    }
    let mut healthy = lab.post("/nodes/pve1/qemu/9201/agent/ping", &[]).await;
    for _ in 0..100 {
        if healthy.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        healthy = lab.post("/nodes/pve1/qemu/9201/agent/ping", &[]).await;
    }
    assert_eq!(
        healthy.status, 200,
        "9201's agent never came up: {}",
        healthy.reason
    );
    let running = lab.get("/nodes/pve1/qemu/9200/status/current").await;
    assert_eq!(running.body["data"]["status"], "running");
    let broken = lab.post("/nodes/pve1/qemu/9200/agent/ping", &[]).await;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.reason, "QEMU guest agent is not running");
}
