//! `kiln apply` against the sim lab (a PVE emulator held to the official
//! schema). Passes against the emulator; the qemu backend proves the same
//! on real guests.

#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
mod sim_inventory;

use std::path::{Path, PathBuf};

use kiln_lab::{LabConfig, RunningLab};
use proxmox_common::start_lab;
use sim_inventory::cli::{self, Run};

/// A lab with the templates lab.yaml names, and a state dir for kiln.
struct Fixture {
    lab: RunningLab,
    state: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let lab = start_lab(LabConfig::default()).await;
        lab.add_template("pve2", 9001, "debian-12-kiln")
            .expect("template");
        Self {
            lab,
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    /// Writes an inventory: lab.yaml with `edit` applied.
    fn inventory(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        cli::write_lab_inventory(self.state.path(), name, edit)
    }

    async fn kiln(&self, inventory: &Path, args: &[&str]) -> Run {
        cli::kiln(&self.lab, self.state.path(), inventory, args, &[]).await
    }

    fn mutating_requests(&self) -> Vec<String> {
        self.lab
            .requests()
            .into_iter()
            .filter(|request| request.method != "GET")
            .map(|request| format!("{} {}", request.method, request.path))
            .collect()
    }

    async fn plan_json(&self, inventory: &Path) -> serde_json::Value {
        let run = self.kiln(inventory, &["plan", "-o", "json"]).await;
        assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
        serde_json::from_str(&run.stdout).expect("plan JSON")
    }
}

fn identity(text: String) -> String {
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_from_empty_creates_exactly_the_inventory_and_a_second_apply_changes_nothing() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    let run = fixture.kiln(&inventory, &["apply"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("lab3         wait_ip done"),
        "{}",
        run.stderr
    );

    let client = proxmox_common::client(&fixture.lab);
    let mut vms: Vec<(String, String)> = client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
        .map(|vm| (vm.name.unwrap_or_default(), vm.node))
        .collect();
    vms.sort();
    assert_eq!(
        vms,
        [
            ("lab1".into(), "pve1".into()),
            ("lab2".into(), "pve2".into()),
            ("lab3".into(), "pve1".into())
        ]
    );
    for vm in client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
    {
        assert!(vm.has_tag("kiln-lab") && vm.has_tag("kiln"), "{vm:?}");
        assert_eq!(vm.status.as_deref(), Some("running"));
        let config = client.vm_config(&vm.node, vm.vmid).await.expect("config");
        assert_eq!(config.get("cores").as_deref(), Some("1"));
        assert_eq!(config.get("memory").as_deref(), Some("1024"));
        let ip = match vm.name.as_deref() {
            Some("lab1") => "10.77.0.11",
            Some("lab2") => "10.77.0.12",
            _ => "10.77.0.13",
        };
        assert_eq!(
            config.get("ipconfig0").as_deref(),
            Some(format!("ip={ip}/24,gw=10.77.0.1").as_str()),
            "{config:?}"
        );
    }

    let before = fixture.mutating_requests().len();
    let again = fixture.kiln(&inventory, &["apply"]).await;
    assert_eq!(again.code, Some(0), "{}{}", again.stdout, again.stderr);
    assert!(again.stderr.contains("Nothing to do"), "{}", again.stderr);
    assert_eq!(
        fixture.mutating_requests()[before..],
        [] as [String; 0],
        "a converged apply must not change anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_cores_update_in_place_and_a_new_image_replaces() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    assert_eq!(fixture.kiln(&inventory, &["apply"]).await.code, Some(0));

    let bigger = fixture.inventory("bigger.yaml", |text| {
        text.replace("    ip: 10.77.0.12\n", "    ip: 10.77.0.12\n    cores: 2\n")
    });
    let plan = fixture.plan_json(&bigger).await;
    assert_eq!(plan["summary"]["update"], 1, "{plan:#}");
    let run = fixture.kiln(&bigger, &["apply"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("lab2         reboot done"),
        "CPU changes need a reboot: {}",
        run.stderr
    );
    assert_eq!(fixture.plan_json(&bigger).await["summary"]["unchanged"], 3);

    fixture
        .lab
        .add_template("pve1", 9010, "debian-12-next")
        .expect("template");
    let next = fixture.inventory("next.yaml", |text| {
        text.replace("    ip: 10.77.0.12\n", "    ip: 10.77.0.12\n    cores: 2\n")
            .replace(
                "images:\n",
                "images:\n  debian-next:\n    golden:\n      recipe: debian-12\n",
            )
            .replace(
                "templates:\n",
                "templates:\n  next:\n    image: debian-next\n    vmids: {pve1: 9010}\n",
            )
            .replace(
                "    ip: 10.77.0.13\n",
                "    ip: 10.77.0.13\n    template: next\n",
            )
    });
    let plan = fixture.plan_json(&next).await;
    assert_eq!(plan["summary"]["replace"], 1, "{plan:#}");
    let refused = fixture.kiln(&next, &["apply"]).await;
    assert_eq!(
        refused.code,
        Some(1),
        "a destructive plan off a terminal needs --yes"
    );
    assert!(
        refused.stderr.contains("rerun with --yes"),
        "{}",
        refused.stderr
    );
    let run = fixture.kiln(&next, &["apply", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("lab3         destroy done"),
        "{}",
        run.stderr
    );
    assert_eq!(fixture.plan_json(&next).await["summary"]["unchanged"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_touches_the_named_node() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    let run = fixture.kiln(&inventory, &["apply", "--only", "lab2"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let names: Vec<String> = proxmox_common::client(&fixture.lab)
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
        .filter_map(|vm| vm.name)
        .collect();
    assert_eq!(names, ["lab2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_event_per_line() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    let run = fixture.kiln(&inventory, &["apply", "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert_eq!(
        events.first().map(|event| event["event"].clone()),
        Some("run_started".into())
    );
    assert_eq!(
        events.last().map(|event| event["outcome"].clone()),
        Some("succeeded".into())
    );
    let finished = events
        .iter()
        .filter(|event| event["event"] == "step_finished")
        .count();
    assert_eq!(
        finished,
        3 * 5,
        "clone, configure, resize, start, wait_ip for each node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_only_this_clusters_vms_and_asks_first() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    assert_eq!(fixture.kiln(&inventory, &["apply"]).await.code, Some(0));
    let client = proxmox_common::client(&fixture.lab);
    let foreign = kiln_proxmox::CloneOptions {
        name: Some("router".into()),
        ..Default::default()
    };
    client
        .run(|| client.clone_vm("pve1", 9000, 700, &foreign))
        .await
        .expect("foreign VM");

    let refused = fixture.kiln(&inventory, &["destroy"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let run = fixture.kiln(&inventory, &["destroy", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let left: Vec<(u32, bool)> = client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .map(|vm| (vm.vmid, vm.template))
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        [(700, false), (9000, true), (9001, true)],
        "templates and the foreign VM stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_makes_the_cluster_again_keeps_its_keys_and_reports_phases() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    assert_eq!(fixture.kiln(&inventory, &["apply"]).await.code, Some(0));
    let keys_before = ssh_keys(&fixture).await;
    let run = fixture.kiln(&inventory, &["rebuild", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("Rebuild of `lab`: destroy "),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("destroy done").count(),
        3,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("wait_ip done").count(),
        3,
        "{}",
        run.stderr
    );
    assert_eq!(
        fixture.plan_json(&inventory).await["summary"]["unchanged"],
        3
    );
    let keys_after = ssh_keys(&fixture).await;
    assert_eq!(keys_after.len(), 3);
    assert_eq!(
        keys_before, keys_after,
        "a rebuild reuses the cluster's SSH key"
    );
}

/// The `sshkeys` of every node VM, by name.
async fn ssh_keys(fixture: &Fixture) -> Vec<(String, Option<String>)> {
    let client = proxmox_common::client(&fixture.lab);
    let mut keys = Vec::new();
    for vm in client
        .cluster_vms()
        .await
        .expect("resources")
        .into_iter()
        .filter(|vm| !vm.template)
    {
        let config = client.vm_config(&vm.node, vm.vmid).await.expect("config");
        keys.push((vm.name.unwrap_or_default(), config.get("sshkeys")));
    }
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_add_remove_and_replace_touch_only_that_node() {
    let fixture = Fixture::new().await;
    let two = fixture.inventory("two.yaml", |text| {
        text.replace(
            "  - name: lab3\n    role: host\n    pve_node: pve1\n    ip: 10.77.0.13\n",
            "",
        )
    });
    assert_eq!(fixture.kiln(&two, &["apply"]).await.code, Some(0));
    let three = fixture.inventory("lab.yaml", identity);
    let before = fixture.mutating_requests().len();
    let added = fixture.kiln(&three, &["node", "add", "lab3"]).await;
    assert_eq!(added.code, Some(0), "{}{}", added.stdout, added.stderr);
    let touched = fixture.mutating_requests()[before..].to_vec();
    assert!(
        touched
            .iter()
            .any(|request| request.ends_with("/qemu/9000/clone")),
        "{touched:?}"
    );
    let existing = ["/qemu/100/", "/qemu/101/"];
    let others: Vec<&String> = touched
        .iter()
        .filter(|request| existing.iter().any(|vm| request.contains(vm)))
        .collect();
    assert!(
        others.is_empty(),
        "node add touched other nodes: {others:?}"
    );
    assert_eq!(fixture.plan_json(&three).await["summary"]["unchanged"], 3);

    let replaced = fixture
        .kiln(&three, &["node", "replace", "lab1", "--yes"])
        .await;
    assert_eq!(
        replaced.code,
        Some(0),
        "{}{}",
        replaced.stdout,
        replaced.stderr
    );
    assert!(
        replaced.stderr.contains("lab1         destroy done")
            && replaced.stderr.contains("lab1         wait_ip done"),
        "{}",
        replaced.stderr
    );
    assert!(!replaced.stderr.contains("lab2 "), "{}", replaced.stderr);

    let removed = fixture
        .kiln(&three, &["node", "remove", "lab2", "--yes"])
        .await;
    assert_eq!(
        removed.code,
        Some(0),
        "{}{}",
        removed.stdout,
        removed.stderr
    );
    let plan = fixture.plan_json(&three).await;
    assert_eq!(
        (
            plan["summary"]["create"].clone(),
            plan["summary"]["unchanged"].clone()
        ),
        (1.into(), 2.into()),
        "{plan:#}"
    );

    let unknown = fixture
        .kiln(&three, &["node", "remove", "lab9", "--yes"])
        .await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown
            .stderr
            .contains("node `lab9` has no VM of this cluster on Proxmox"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_a_foreign_vm_named_like_a_node_and_leaves_it_alone() {
    let fixture = Fixture::new().await;
    let client = proxmox_common::client(&fixture.lab);
    let options = kiln_proxmox::CloneOptions {
        name: Some("lab1".into()),
        ..Default::default()
    };
    client
        .run(|| client.clone_vm("pve1", 9000, 640, &options))
        .await
        .expect("foreign VM");
    let before = fixture.mutating_requests().len();
    let run = fixture
        .kiln(
            &fixture.inventory("lab.yaml", identity),
            &["apply", "--yes"],
        )
        .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("VM 640 on pve1 is named `lab1`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fixture.mutating_requests().len(),
        before,
        "nothing may change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_lands_in_the_journal_with_its_steps() {
    let fixture = Fixture::new().await;
    let inventory = fixture.inventory("lab.yaml", identity);
    assert_eq!(fixture.kiln(&inventory, &["apply"]).await.code, Some(0));
    let runs = fixture.kiln(&inventory, &["runs", "-o", "json"]).await;
    assert_eq!(runs.code, Some(0), "{}", runs.stderr);
    let listed: serde_json::Value = serde_json::from_str(&runs.stdout).expect("JSON");
    let run = &listed["runs"][0];
    assert_eq!(run["command"], "apply", "{listed:#}");
    assert_eq!(run["outcome"], "succeeded", "{listed:#}");
    let id = run["id"].as_str().expect("id").to_owned();
    let shown = fixture
        .kiln(&inventory, &["runs", "show", &id, "-o", "json"])
        .await;
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    let detail: serde_json::Value = serde_json::from_str(&shown.stdout).expect("JSON");
    let nodes = detail["nodes"].as_array().expect("nodes");
    let steps: Vec<usize> = nodes
        .iter()
        .map(|node| node["steps"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        steps,
        [5, 5, 5],
        "clone, configure, resize, start, wait_ip per node: {detail:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_install_needs_ssh_and_agent_and_known_nodes_and_changes_nothing_without() {
    let fixture = Fixture::new().await;
    let plain = fixture.inventory("plain.yaml", |text| text);
    let run = fixture.kiln(&plain, &["agent", "install"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the inventory needs `ssh` and `agent` sections to deploy agents"),
        "{}",
        run.stderr
    );
    let with_agent = fixture.inventory("agents.yaml", |text| {
        format!("{text}ssh: {{user: kiln}}\nagent: {{collector: https://127.0.0.1:1}}\n")
    });
    let run = fixture
        .kiln(&with_agent, &["agent", "install", "lab1", "zz"])
        .await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("no node `zz` in the inventory"),
        "{}",
        run.stderr
    );
    assert!(
        fixture.mutating_requests().is_empty(),
        "{:?}",
        fixture.mutating_requests()
    );
}
