//! `kiln apply` against the sim lab (a PVE emulator held to the official
//! schema). Passes against the emulator; the qemu backend proves the same
//! on real guests.

mod proxmox_common;

use std::path::{Path, PathBuf};

use kiln_lab::{LabConfig, RunningLab};
use proxmox_common::start_lab;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

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
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventory/examples/lab.yaml"),
        )
        .expect("lab.yaml");
        let path = self.state.path().join(name);
        std::fs::write(&path, edit(text)).expect("write inventory");
        path
    }

    async fn kiln(&self, inventory: &Path, args: &[&str]) -> Run {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"));
        command
            .args(args)
            .arg("-i")
            .arg(inventory)
            .env("KILN_PROXMOX_ENDPOINT", &self.lab.endpoint)
            .env("KILN_PROXMOX_FINGERPRINT", &self.lab.fingerprint)
            .env("KILN_PROXMOX_TOKEN", self.lab.token())
            .env("KILN_STATE_DIR", self.state.path().join("state"))
            .env("KILN_CONFIG_DIR", self.state.path().join("config"))
            .env("NO_COLOR", "1");
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("kiln runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
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
        assert!(
            config
                .get("sshkeys")
                .is_some_and(|keys| keys.contains("ssh-ed25519")),
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
