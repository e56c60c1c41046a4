//! `kiln plan` against the sim lab (a PVE emulator held to the official
//! schema): what it reads, what it prints, how it exits. Passes against the
//! emulator only; the real-guest tier comes with the qemu backend.

#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
mod sim_inventory;

use std::net::IpAddr;
use std::path::PathBuf;

use kiln::plan::{DesiredVm, Marker, Stage, desired_vms};
use kiln_lab::{LabConfig, RunningLab};
use kiln_proxmox::{CloneOptions, IpConfig, ProxmoxClient, VmConfigUpdate};
use proxmox_common::{client, start_lab};
use sim_inventory::cli::{self, Run};

fn lab_inventory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../inventory/examples/lab.yaml")
}

/// Runs the `kiln` binary against the lab, with its own state dirs.
async fn kiln(lab: &RunningLab, args: &[&str]) -> Run {
    let state = tempfile::tempdir().expect("state dir");
    cli::kiln(lab, state.path(), &lab_inventory(), args, &[]).await
}

async fn lab_with_templates() -> RunningLab {
    let lab = start_lab(LabConfig::default()).await;
    lab.add_template("pve2", 9001, "debian-12-kiln")
        .expect("second template");
    lab
}

fn desired() -> Vec<DesiredVm> {
    let inventory = kiln_inventory::load(&lab_inventory()).expect("lab.yaml");
    desired_vms(&inventory)
}

/// What `kiln apply` leaves behind for one node, made by hand through the API.
async fn make_like_kiln(client: &ProxmoxClient, wanted: &DesiredVm, vmid: u32) {
    let marker = Marker {
        cluster: "lab".into(),
        node: wanted.node.clone(),
        stage: Stage::Ready,
        fingerprint: wanted.fingerprint.clone(),
        image: wanted.image.clone(),
        template_vmid: wanted.template_vmid,
        kiln_version: "test".into(),
        run: "test".into(),
    };
    let options = CloneOptions {
        name: Some(wanted.node.clone()),
        description: Some(marker.description()),
        ..CloneOptions::default()
    };
    let node = wanted.pve_node.as_str();
    client
        .run(|| client.clone_vm(node, wanted.template_vmid, vmid, &options))
        .await
        .expect("clone");
    let gateway: IpAddr = "10.77.0.1".parse().expect("ip");
    let tags: Vec<&str> = wanted.tags.iter().map(String::as_str).collect();
    let update = VmConfigUpdate::new()
        .cores(wanted.cores)
        .memory_mib(wanted.memory_mib)
        .ipconfig(0, &IpConfig::static_v4(wanted.ipv4.clone(), Some(gateway)))
        .tags(&tags)
        .description(&marker.description());
    client
        .run(|| client.update_config(node, vmid, &update))
        .await
        .expect("config");
    for disk in &wanted.disks {
        let size = format!("{}G", disk.size_gib);
        client
            .run(|| client.resize(node, vmid, &disk.slot, &size))
            .await
            .expect("resize");
    }
    client
        .run(|| client.start(node, vmid))
        .await
        .expect("start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_lab_plans_every_node_for_creation_and_exits_2() {
    let lab = lab_with_templates().await;
    let run = kiln(&lab, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("+ lab1  create on pve1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("3 to create, 0 to update, 0 to replace, 0 to destroy, 0 unchanged."),
        "{}",
        run.stdout
    );
    let mutating = lab
        .requests()
        .iter()
        .filter(|request| request.method != "GET")
        .count();
    assert_eq!(mutating, 0, "plan must not change anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_kiln_made_is_read_back_as_unchanged() {
    let lab = lab_with_templates().await;
    let client = client(&lab);
    for (index, wanted) in desired().iter().enumerate() {
        make_like_kiln(&client, wanted, 100 + index as u32).await;
    }
    let run = kiln(&lab, &["plan", "--detailed-exitcode", "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(report["summary"]["unchanged"], 3, "{report:#}");
    assert_eq!(report["summary"]["changes_pending"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_is_planned_to_start_in_place() {
    let lab = lab_with_templates().await;
    let client = client(&lab);
    let wanted = desired();
    for (index, vm) in wanted.iter().enumerate() {
        make_like_kiln(&client, vm, 100 + index as u32).await;
    }
    client.run(|| client.stop("pve1", 100)).await.expect("stop");
    let run = kiln(&lab, &["plan", "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let lab1 = &report["plan"]["nodes"][0];
    assert_eq!(lab1["action"], "update", "{report:#}");
    assert_eq!(lab1["changes"][0]["field"], "power");
    assert_eq!(report["summary"]["update"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_vm_named_like_a_node_is_refused_by_name() {
    let lab = lab_with_templates().await;
    let client = client(&lab);
    let options = CloneOptions {
        name: Some("lab2".into()),
        ..CloneOptions::default()
    };
    client
        .run(|| client.clone_vm("pve1", 9000, 555, &options))
        .await
        .expect("clone");
    let run = kiln(&lab, &["plan"]).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("VM 555 on pve1 is named `lab2` like inventory node `lab2`, but it is not kiln's (no `kiln-lab` tag)"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_before_anything_is_read() {
    let lab = lab_with_templates().await;
    let mut wrong = lab.fingerprint.clone();
    wrong.replace_range(0..2, if wrong.starts_with("00") { "11" } else { "00" });
    let state = tempfile::tempdir().expect("state dir");
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .args(["plan", "-i"])
        .arg(lab_inventory())
        .env("KILN_PROXMOX_ENDPOINT", &lab.endpoint)
        .env("KILN_PROXMOX_FINGERPRINT", &wrong)
        .env("KILN_PROXMOX_TOKEN", lab.token())
        .env("KILN_STATE_DIR", state.path())
        .env("KILN_CONFIG_DIR", state.path())
        .output();
    let output = output.expect("kiln runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&wrong) && stderr.contains(&lab.fingerprint),
        "both fingerprints shown: {stderr}"
    );
    assert!(
        !stderr.contains(&lab.token_secret),
        "the token leaked: {stderr}"
    );
}
