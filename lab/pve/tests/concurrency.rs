//! Many clients at once: the lab never hands one VMID to two clones, and with retryable
//! faults injected every clone+configure+start sequence of a retrying client ends with a
//! running, unlocked VM. The faults exist only in the emulator (kiln-lab sim).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use kiln_lab_pve::{FaultConfig, LabConfig};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clones_to_one_vmid_have_exactly_one_winner() {
    let lab = Arc::new(common::lab_with_template().await);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let lab = Arc::clone(&lab);
        handles.push(tokio::spawn(async move {
            lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "555")])
                .await
        }));
    }
    let mut accepted = 0;
    for handle in handles {
        let reply = handle.await.unwrap();
        if reply.status == 200 {
            accepted += 1;
        } else {
            assert_eq!(
                reply.reason,
                "unable to create VM 555: config file already exists"
            );
        }
    }
    assert_eq!(accepted, 1);
}

fn retryable(message: &str) -> bool {
    [
        "got timeout",
        "can't lock file",
        "got no worker upid",
        "internal error",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Sends until the answer is not a retryable error; returns the data.
async fn call(
    lab: &common::Lab,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Result<Value, String> {
    for _ in 0..50 {
        let reply = match method {
            "POST" => lab.post(path, form).await,
            _ => lab.get(path).await,
        };
        if reply.status == 200 {
            return Ok(reply.body["data"].clone());
        }
        if !retryable(&reply.reason) {
            return Err(reply.reason);
        }
    }
    Err(format!("{path}: still failing after 50 tries"))
}

/// Dispatches a task and waits for it, retrying dispatch errors and failed tasks.
async fn task(lab: &common::Lab, path: &str, form: &[(&str, &str)]) -> Result<(), String> {
    for _ in 0..50 {
        let upid = call(lab, "POST", path, form).await?;
        let status = lab.wait(upid.as_str().unwrap()).await;
        let exit = status["exitstatus"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if exit == "OK" {
            return Ok(());
        }
        if !retryable(&exit) {
            return Err(exit);
        }
    }
    Err(format!("{path}: task still failing after 50 tries"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sequences_succeed_under_retryable_faults() {
    let seed = 20261122;
    let yaml = format!(
        "seed: {seed}\noperations:\n  \"*\":\n    error_rate: 0.1\n    errors: [\"500\", cant_lock, got_timeout, no_worker_upid]\n  clone:\n    error_rate: 0.1\n    errors: [cant_lock, got_timeout]\n    task_failure_rate: 0.1\n    task_errors: [storage_lock]\n  task_status:\n    error_rate: 0.0\n"
    );
    println!("faults seed {seed}");
    let lab = Arc::new(
        common::start(LabConfig {
            faults: Some(FaultConfig::from_yaml(&yaml).unwrap()),
            ..LabConfig::default()
        })
        .await,
    );
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    let next = Arc::new(AtomicU32::new(1000));
    let mut handles = Vec::new();
    for i in 0..20 {
        let (lab, next) = (Arc::clone(&lab), Arc::clone(&next));
        handles.push(tokio::spawn(async move {
            let name = format!("node{i}");
            let vmid = loop {
                let vmid = next.fetch_add(1, Ordering::SeqCst);
                match task(
                    &lab,
                    "/nodes/pve1/qemu/9000/clone",
                    &[("newid", &vmid.to_string()), ("name", &name)],
                )
                .await
                {
                    Ok(()) => break vmid,
                    Err(e) if e.contains("already exists") => continue,
                    Err(e) => panic!("clone {name}: {e}"),
                }
            };
            let ip = format!("ip=10.30.0.{}/24,gw=10.30.0.1", 10 + i);
            task(
                &lab,
                &format!("/nodes/pve1/qemu/{vmid}/config"),
                &[("ipconfig0", &ip), ("tags", "kiln-test")],
            )
            .await
            .unwrap();
            task(&lab, &format!("/nodes/pve1/qemu/{vmid}/status/start"), &[])
                .await
                .unwrap();
            vmid
        }));
    }
    let mut vmids = Vec::new();
    for handle in handles {
        vmids.push(handle.await.unwrap());
    }
    vmids.sort_unstable();
    vmids.dedup();
    assert_eq!(vmids.len(), 20, "duplicate VMIDs (seed {seed})");
    let resources = call(&lab, "GET", "/cluster/resources?type=vm", &[])
        .await
        .unwrap();
    let vms: Vec<&Value> = resources
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["vmid"] != 9000)
        .collect();
    assert_eq!(vms.len(), 20, "seed {seed}: {vms:?}");
    let failures = lab
        .lab
        .requests()
        .iter()
        .filter(|r| r.status == 500)
        .count();
    assert!(
        failures > 0,
        "seed {seed}: no fault was injected, the test proves nothing"
    );
    for vm in vms {
        assert!(vm.get("lock").is_none(), "seed {seed}: left locked: {vm}");
        assert_eq!(vm["status"], "running", "seed {seed}: {vm}");
        assert_eq!(vm["tags"], "kiln-test");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_clones_contend_for_the_storage_lock() {
    let yaml = "seed: 3\nstorage_lock:\n  hold_ms: 1500\n  timeout_ms: 200\n";
    let lab = Arc::new(
        common::start(LabConfig {
            faults: Some(FaultConfig::from_yaml(yaml).unwrap()),
            ..LabConfig::default()
        })
        .await,
    );
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    let mut handles = Vec::new();
    for i in 0..6u32 {
        let lab = Arc::clone(&lab);
        handles.push(tokio::spawn(async move {
            let newid = (600 + i).to_string();
            let reply = lab
                .post("/nodes/pve1/qemu/9000/clone", &[("newid", newid.as_str())])
                .await;
            let status = lab.wait(reply.body["data"].as_str().unwrap()).await;
            status["exitstatus"].as_str().unwrap().to_string()
        }));
    }
    let mut exits = Vec::new();
    for handle in handles {
        exits.push(handle.await.unwrap());
    }
    let ok = exits.iter().filter(|e| *e == "OK").count();
    let timed_out = exits
        .iter()
        .filter(|e| *e == "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout")
        .count();
    assert!(
        ok >= 1 && timed_out >= 1 && ok + timed_out == 6,
        "{exits:?}"
    );
    // One at a time, nobody waits.
    for newid in ["700", "701"] {
        lab.ok_task(
            lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", newid)])
                .await,
        )
        .await;
    }
}

#[tokio::test]
async fn thousands_of_vms_are_listed() {
    let lab = common::start(LabConfig::default()).await;
    for vmid in 10_000..13_000u32 {
        let node = if vmid % 2 == 0 { "pve1" } else { "pve2" };
        lab.lab
            .add_template(node, vmid, &format!("t{vmid}"))
            .unwrap();
    }
    let resources = lab.get("/cluster/resources?type=vm").await;
    let vms = resources.body["data"].as_array().unwrap();
    assert_eq!(vms.len(), 3000);
    assert!(vms.iter().all(|v| v["maxdisk"] == 2u64 << 30));
    let pve2 = lab.get("/nodes/pve2/qemu").await;
    assert_eq!(pve2.body["data"].as_array().unwrap().len(), 1500);
    assert_eq!(lab.get("/cluster/nextid").await.body["data"], "100");
}
