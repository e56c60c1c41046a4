//! The engine's figures (`cargo xtask bench`), measured on the sim lab:
//!
//! - rebuild makespan ÷ critical path for 3, 12 and 50 nodes, under the
//!   latency model clone 8 s, start 2 s, boot 20 s scaled down 100×; the
//!   critical path is one node's rebuild on the same lab (goal ≤ 1.10);
//! - plan time for a 300-node inventory (goal < 300 ms).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::engine::{Context, Event, EventSink, RunLabel, RunOutcome, Timeouts, execute, observe};
use kiln::plan::{ObservedConfig, ObservedVm, PlanOptions, desired_vms, destroy_plan, plan};
use kiln::proxmox::{Auth, ClientConfig, LimitsConfig, ProxmoxClient, RetryPolicy};
use kiln_inventory::Inventory;
use kiln_lab::{FaultConfig, LabConfig, RunningLab};
use tokio::sync::watch;

/// The latency model, scaled down 100×.
const LATENCY: &str = "
boot_to_agent_ms: 200
operations:
  clone: {task_ms: 80}
  start: {task_ms: 20}
  \"*\": {task_ms: 5}
";

struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _: &Event) {}
}

/// An inventory of `count` plain VMs spread over two PVE nodes.
fn inventory_text(count: usize) -> String {
    let mut text = String::from(
        "cluster: {name: bench}
proxmox: {endpoint: https://127.0.0.1:1, auth: {token: env:T}, nodes: [pve1, pve2]}
network: {ipv4: {cidr: 10.77.0.0/16, gateway: 10.77.0.1}}
images: {deb: {golden: {recipe: debian-12}}}
templates: {deb: {image: deb, vmids: {pve1: 9000, pve2: 9001}}}
defaults: {template: deb, cores: 1, memory: 1GiB, disks: [{size: 4G}]}
nodes:
",
    );
    for index in 0..count {
        let _ = writeln!(
            text,
            "  - {{name: n{index}, role: host, pve_node: pve{}, ip: 10.77.{}.{}}}",
            index % 2 + 1,
            1 + index / 200,
            10 + index % 200
        );
    }
    text
}

fn client(lab: &RunningLab, per_node: usize, per_storage: usize) -> ProxmoxClient {
    let auth = Auth::token_from_str(&lab.token()).expect("token");
    let pin = lab.fingerprint.parse().expect("fingerprint");
    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, kiln_tls::Trust::Pin(pin));
    config.task_poll_max = Duration::from_millis(10);
    config.agent_poll_max = Duration::from_millis(20);
    config.retry = RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_times: 10,
        max_total: Duration::from_secs(30),
    };
    config.limits = LimitsConfig {
        per_node,
        per_storage,
    };
    ProxmoxClient::new(config).expect("client")
}

async fn run(client: &ProxmoxClient, inventory: &Arc<Inventory>, destroy: bool) -> Duration {
    let started = Instant::now();
    let observed = observe(client, inventory).await.expect("observe");
    let plan = if destroy {
        destroy_plan(inventory, &observed, None)
    } else {
        plan(inventory, &observed, &PlanOptions::default())
    }
    .expect("plan");
    let context = Arc::new(Context {
        client: client.clone(),
        inventory: inventory.clone(),
        run: uuid::Uuid::now_v7(),
        authorized_keys: Vec::new(),
        timeouts: Timeouts::default(),
        hosts: None,
        agents: None,
    });
    let label = RunLabel {
        command: "bench".into(),
        inventory_hash: String::new(),
        operator: "bench".into(),
    };
    let (_interrupt, interrupted) = watch::channel(false);
    let report = execute(context, &plan, label, Arc::new(Quiet), interrupted).await;
    assert_eq!(
        report.outcome,
        RunOutcome::Succeeded,
        "{:?}",
        report.failures
    );
    started.elapsed()
}

/// A rebuild (destroy, then create) of `count` nodes, after a first apply.
async fn rebuild(count: usize, per_node: usize, per_storage: usize) -> Duration {
    let faults = FaultConfig::from_yaml(&format!("seed: 1\n{LATENCY}")).expect("latency model");
    let lab = kiln_lab::start(LabConfig {
        faults: Some(faults),
        ..LabConfig::default()
    })
    .await
    .expect("lab");
    lab.add_template("pve1", 9000, "deb").expect("template");
    lab.add_template("pve2", 9001, "deb").expect("template");
    let inventory =
        Arc::new(kiln_inventory::parse("bench.yaml", &inventory_text(count)).expect("inventory"));
    let client = client(&lab, per_node, per_storage);
    run(&client, &inventory, false).await;
    run(&client, &inventory, true).await + run(&client, &inventory, false).await
}

fn plan_time(count: usize) -> (Duration, Duration) {
    let text = inventory_text(count);
    let started = Instant::now();
    let inventory = kiln_inventory::parse("bench.yaml", &text).expect("inventory");
    let validated = started.elapsed();
    let mut observed: Vec<ObservedVm> = desired_vms(&inventory)
        .iter()
        .enumerate()
        .map(|(index, wanted)| ObservedVm {
            vmid: 100 + index as u32,
            pve_node: wanted.pve_node.clone(),
            name: wanted.node.clone(),
            tags: wanted.tags.clone(),
            running: true,
            lock: None,
            template: false,
            config: Some(ObservedConfig {
                marker: None,
                cores: wanted.cores,
                memory_mib: wanted.memory_mib,
                ..ObservedConfig::default()
            }),
        })
        .collect();
    for (vmid, node) in [(9000, "pve1"), (9001, "pve2")] {
        observed.push(ObservedVm {
            vmid,
            pve_node: node.into(),
            name: format!("template-{vmid}"),
            tags: Default::default(),
            running: false,
            lock: None,
            template: true,
            config: None,
        });
    }
    let started = Instant::now();
    let _ = plan(&inventory, &[], &PlanOptions::default());
    let _ = plan(&inventory, &observed, &PlanOptions::default());
    (validated, started.elapsed() / 2)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "engine benchmark on the sim lab (latency model: clone 8 s, start 2 s, boot 20 s, scaled 1/100)"
    );
    for (label, per_node, per_storage) in [
        ("inventory defaults (4 per node, 2 per storage)", 4, 2),
        ("limits raised to 64", 64, 64),
    ] {
        println!("limits: {label}");
        let critical = runtime.block_on(rebuild(1, per_node, per_storage));
        println!(
            "  critical path (1-node rebuild): {:>7.0} ms",
            critical.as_secs_f64() * 1000.0
        );
        for count in [3, 12, 50] {
            let makespan = runtime.block_on(rebuild(count, per_node, per_storage));
            let ratio = makespan.as_secs_f64() / critical.as_secs_f64();
            let verdict = if ratio <= 1.10 { "meets" } else { "misses" };
            println!(
                "  rebuild {count:>2} nodes: {:>7.0} ms  makespan/critical path = {ratio:.2} ({verdict} the goal ≤ 1.10)",
                makespan.as_secs_f64() * 1000.0
            );
        }
    }
    let (validated, planned) = plan_time(300);
    println!(
        "plan, 300 nodes: {:.1} ms ({} the goal < 300 ms); validating the inventory: {:.1} ms",
        planned.as_secs_f64() * 1000.0,
        if planned < Duration::from_millis(300) {
            "meets"
        } else {
            "misses"
        },
        validated.as_secs_f64() * 1000.0
    );
}
