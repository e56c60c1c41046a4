//! Crash safety and fault tolerance of apply, against the sim lab (a PVE
//! emulator held to the official schema; these pass against the emulator).
//! Seeds come from `KILN_TEST_SEED` or the clock and are printed on failure.

#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
mod sim_inventory;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kiln::engine::{Context, Event, EventSink, RunLabel, RunOutcome, Timeouts, execute, observe};
use kiln::plan::{Action, PlanOptions, plan};
use kiln_lab::{FaultConfig, LabConfig, RunningLab};
use proxmox_common::{SeedGuard, client, seed, start_lab};
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

/// lab.yaml for the sim: without `ssh` and `agent`, as the CLI runs get it.
fn inventory() -> kiln_inventory::Inventory {
    kiln_inventory::parse("lab.yaml", &sim_inventory::lab_yaml()).expect("lab.yaml")
}

struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _: &Event) {}
}

/// What a converged lab looks like: exactly the three nodes, once each,
/// unlocked and running, and a plan with nothing to do.
async fn assert_converged(lab: &RunningLab, inventory: &kiln_inventory::Inventory) {
    let client = client(lab);
    let vms: Vec<_> = client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
        .collect();
    let names: Vec<String> = vms.iter().filter_map(|vm| vm.name.clone()).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicate VMs: {names:?}");
    assert_eq!(
        unique.into_iter().cloned().collect::<Vec<_>>(),
        ["lab1", "lab2", "lab3"],
        "orphans or missing nodes"
    );
    assert!(
        vms.iter().all(|vm| vm.lock.is_none()),
        "a VM was left locked: {vms:?}"
    );
    let observed = observe(&client, inventory).await.expect("observe");
    let plan = plan(inventory, &observed, &PlanOptions::default()).expect("plan");
    assert!(
        plan.nodes.iter().all(|node| node.action == Action::Nothing),
        "not converged: {plan:?}"
    );
}

async fn apply_once(lab: &RunningLab, inventory: &Arc<kiln_inventory::Inventory>) -> RunOutcome {
    let client = client(lab);
    let observed = match observe(&client, inventory).await {
        Ok(observed) => observed,
        Err(_) => return RunOutcome::Failed,
    };
    let Ok(plan) = plan(inventory, &observed, &PlanOptions::default()) else {
        return RunOutcome::Failed;
    };
    let context = Arc::new(Context {
        client,
        inventory: inventory.clone(),
        run: uuid::Uuid::now_v7(),
        authorized_keys: Vec::new(),
        timeouts: Timeouts {
            boot: Duration::from_secs(20),
            ..Timeouts::default()
        },
        hosts: None,
        agents: None,
        storage: None,
    });
    let label = RunLabel {
        command: "apply".into(),
        inventory_hash: String::new(),
        operator: "test@lab".into(),
    };
    let (_interrupt, interrupted) = watch::channel(false);
    execute(context, &plan, label, Arc::new(Quiet), interrupted)
        .await
        .outcome
}

const FAULTS: &str = "
operations:
  \"*\":
    error_rate: 0.1
    errors: [\"500\", cant_lock, got_timeout, no_worker_upid]
    task_failure_rate: 0.05
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_seeded_runs_with_ten_percent_faults_all_converge() {
    let base = seed();
    let inventory = Arc::new(inventory());
    for run in 0..50u64 {
        let seed = base.wrapping_add(run);
        let _guard = SeedGuard(seed);
        let faults = FaultConfig::from_yaml(&format!("seed: {seed}\n{FAULTS}")).expect("faults");
        let lab = start_lab(LabConfig {
            faults: Some(faults),
            task_duration: Duration::from_millis(5),
            boot_delay: Duration::from_millis(10),
            ..LabConfig::default()
        })
        .await;
        lab.add_template("pve2", 9001, "debian-12-kiln")
            .expect("template");
        let mut outcome = RunOutcome::Failed;
        for _ in 0..3 {
            outcome = apply_once(&lab, &inventory).await;
            if outcome == RunOutcome::Succeeded {
                break;
            }
        }
        assert_eq!(
            outcome,
            RunOutcome::Succeeded,
            "seed {seed}: no success in 3 runs"
        );
        assert_converged(&lab, &inventory).await;
    }
}

/// `kiln apply` on lab.yaml for the sim (no `ssh`/`agent`: no guests to log
/// in to), with the inventory written into `state`.
fn kiln_apply(lab: &RunningLab, state: &Path) -> std::process::Command {
    let inventory = state.join("lab.yaml");
    std::fs::write(&inventory, sim_inventory::lab_yaml()).expect("inventory");
    let mut command = sim_inventory::cli::command(lab, state, &inventory, &["apply", "--yes"]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_applies_killed_at_random_moments_converge_on_a_plain_rerun() {
    let seed = seed();
    let _guard = SeedGuard(seed);
    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    let lab = start_lab(LabConfig {
        task_duration: Duration::from_millis(120),
        boot_delay: Duration::from_millis(200),
        ..LabConfig::default()
    })
    .await;
    lab.add_template("pve2", 9001, "debian-12-kiln")
        .expect("template");
    let state = tempfile::tempdir().expect("state");
    let inventory = inventory();
    for round in 0..20 {
        let kill_after = Duration::from_millis(random.random_range(50..1500));
        let mut child = kiln_apply(&lab, state.path()).spawn().expect("kiln starts");
        tokio::time::sleep(kill_after).await;
        let _ = child.kill();
        let _ = child.wait();
        let rerun = kiln_apply(&lab, state.path());
        let output = tokio::task::spawn_blocking(move || {
            let mut rerun = rerun;
            rerun.output()
        })
        .await
        .expect("join")
        .expect("rerun");
        if output.status.code() != Some(0) {
            panic!(
                "round {round}, killed after {kill_after:?}: {}\nVMs then: {:#?}",
                String::from_utf8_lossy(&output.stderr),
                vm_configs(&lab).await
            );
        }
        assert_converged(&lab, &inventory).await;
        if round % 2 == 1 {
            destroy_all(&lab).await;
        }
    }
}

/// Back to an empty cluster, so that later kills land in creation again.
async fn destroy_all(lab: &RunningLab) {
    let client = client(lab);
    for vm in client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
    {
        client
            .run(|| client.stop(&vm.node, vm.vmid))
            .await
            .expect("stop");
        let options = kiln_proxmox::DeleteOptions {
            purge: true,
            destroy_unreferenced_disks: true,
        };
        client
            .run(|| client.delete_vm(&vm.node, vm.vmid, options))
            .await
            .expect("delete");
    }
}

/// Every guest's config, to show what a failed round left behind.
async fn vm_configs(lab: &RunningLab) -> Vec<(u32, kiln_proxmox::VmConfig)> {
    let client = client(lab);
    let mut configs = Vec::new();
    for vm in client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
    {
        configs.push((
            vm.vmid,
            client.vm_config(&vm.node, vm.vmid).await.expect("config"),
        ));
    }
    configs
}
