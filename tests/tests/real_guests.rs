//! kiln end to end on real guests: the lab's `qemu` backend (QEMU guests
//! booted from the golden image, real cloud-init, sshd, qemu-guest-agent, in
//! a network namespace), the collector inside it, `kiln-agent` on every
//! guest. Proxmox itself is the lab's emulation, held to PVE's API schema.
//!
//! One test walks the whole story, because each guest costs a TCG boot on a
//! 2-core machine: templates → apply → SSH with the cloud-init key →
//! healthy → TrueNAS storage (the emulator in the lab's namespace, tgt and
//! nfs-ganesha behind it: each guest's own kernel logs in over iSCSI with
//! CHAP and mounts NFS; a second apply changes nothing on the NAS) →
//! `kiln agent install` (unchanged agents stay, a changed config
//! redeploys only the named node) → sshd stopped turns the node failing →
//! a node-loss drill → a nightly copy that passes → a nightly copy that
//! cannot boot fails with a JUnit file naming node and phase → destroy;
//! nothing is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_e2e::LabHarness;
use serde_json::Value;

/// Agents report this often; "failing within two intervals" is measured in it.
const INTERVAL_SECS: u64 = 5;

fn inventory(key_env: &str, interval_secs: u64) -> String {
    format!(
        "cluster: {{name: e2e, distribution: none, domain: e2e.kiln.internal}}
proxmox:
  endpoint: env:KILN_PROXMOX_ENDPOINT
  auth: {{token: env:KILN_PROXMOX_TOKEN}}
  tls: {{fingerprint: env:KILN_PROXMOX_FINGERPRINT}}
  nodes: [pve1, pve2]
  storage: local-lvm
network:
  bridge: vmbr0
  ipv4: {{cidr: 10.77.0.0/24, gateway: 10.77.0.1}}
  dns: [10.77.0.1]
images:
  debian-12: {{golden: {{recipe: debian-12}}}}
templates:
  debian-12: {{image: debian-12, vmids: {{pve1: 9000, pve2: 9001}}}}
defaults: {{template: debian-12, cores: 1, memory: 768MiB, disks: [{{size: 4GiB}}]}}
nodes:
  - {{name: e2e1, role: host, pve_node: pve1, ip: 10.77.0.21}}
  - {{name: e2e2, role: host, pve_node: pve2, ip: 10.77.0.22}}
ssh:
  user: kiln
  key: env:{key_env}
agent:
  collector: env:KILN_COLLECTOR_URL
  interval: {interval_secs}s
  checks: {{clock_sync: false, load_warn_per_cpu: 10, load_fail_per_cpu: 20}}
storage:
  truenas:
    endpoint: env:KILN_TRUENAS_ENDPOINT
    api_key: env:KILN_TRUENAS_KEY
    tls: {{fingerprint: env:KILN_TRUENAS_FINGERPRINT}}
    iscsi: {{portal: 10.77.0.1:3260, dataset: tank/k8s/iscsi, chap: true}}
    nfs: {{server: 10.77.0.1, dataset: tank/k8s/nfs}}
profiles:
  nightly: {{vmids: 9100-9199, ips: 10.77.0.100-10.77.0.149, nodes: [e2e1]}}
  broken: {{vmids: 9200-9299, ips: 10.77.0.150-10.77.0.199, nodes: [e2e2]}}
"
    )
}

/// Tears the lab down even when an assertion fails.
struct Teardown<'a> {
    lab: &'a LabHarness,
    done: bool,
}

impl Teardown<'_> {
    fn now(&mut self) {
        self.done = true;
        self.lab.down().unwrap();
    }
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(error) = self.lab.down()
        {
            eprintln!("teardown: {error}");
        }
    }
}

fn stdout_json(lab: &LabHarness, args: &[&str]) -> Value {
    let output = lab.in_lab_output(args).unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{args:?} printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn node_states(lab: &LabHarness) -> Vec<(String, String)> {
    let status = stdout_json(lab, &["kiln", "status", "-o", "json"]);
    status
        .as_array()
        .unwrap_or_else(|| panic!("kiln status -o json is not a list of nodes: {status}"))
        .iter()
        .map(|node| {
            (
                node["node"].as_str().unwrap_or_default().to_owned(),
                node["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn ssh(lab: &LabHarness, key: &Path, ip: &str, command: &str) -> std::process::Output {
    let key = key.display().to_string();
    lab.in_lab_output(&[
        "ssh",
        "-i",
        &key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        &format!("kiln@{ip}"),
        command,
    ])
    .unwrap()
}

/// The VMs the lab has, as `(vmid, name, tags)`.
fn lab_vms(lab: &LabHarness) -> Vec<(u64, String, String)> {
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.credentials()).unwrap()).unwrap();
    let token = format!(
        "PVEAPIToken={}={}",
        credentials["token_id"].as_str().unwrap(),
        credentials["token_secret"].as_str().unwrap()
    );
    let url = format!(
        "{}/api2/json/cluster/resources?type=vm",
        credentials["endpoint"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
    );
    let listing = stdout_json(
        lab,
        &[
            "curl",
            "-sfk",
            "-H",
            &format!("Authorization: {token}"),
            &url,
        ],
    );
    listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| {
            (
                vm["vmid"].as_u64().unwrap_or_default(),
                vm["name"].as_str().unwrap_or_default().to_owned(),
                vm["tags"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Every call the TrueNAS emulator answered, in order.
fn nas_calls(lab: &LabHarness) -> Vec<Value> {
    std::fs::read_to_string(lab.truenas_request_log())
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn wait_until(what: &str, patience: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    started.elapsed()
}

#[test]
fn a_cluster_on_real_guests_end_to_end() {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout
            .starts_with(b"0"),
        "the real-guest tests need root (network namespaces, taps): run them as root, as CI does"
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let bin = LabHarness::debug_binaries(&root).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("lab");
    std::fs::create_dir_all(&dir).unwrap();

    let key = scratch.path().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-e2e", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let inventory_path = scratch.path().join("e2e.yaml");
    std::fs::write(
        &inventory_path,
        inventory("KILN_E2E_SSH_KEY", INTERVAL_SECS),
    )
    .unwrap();
    let faults = scratch.path().join("faults.yaml");
    // The `broken` profile's first VM (9200) never boots: its guest agent never answers.
    std::fs::write(&faults, "seed: 1\nbroken_boot_vmids: [9200]\n").unwrap();

    let name = format!("e2e{}", std::process::id());
    let mut lab = LabHarness::new(&name, &root, &dir, &bin, &inventory_path);
    lab.set_env("KILN_E2E_SSH_KEY", std::fs::read_to_string(&key).unwrap());
    lab.kiln(&["image", "build", "debian-12"]).unwrap();
    let faults_arg = faults.display().to_string();
    lab.start_lab(2, &["--faults", &faults_arg]).unwrap();
    if let Err(error) = lab.start_truenas() {
        let _ = lab.down();
        panic!("{error}");
    }
    let mut teardown = Teardown {
        lab: &lab,
        done: false,
    };
    lab.start_collector().unwrap();

    // Templates from the golden image, then the cluster: clone, boot, SSH, agent, healthy.
    lab.in_lab(&["kiln", "image", "ensure", "--yes"]).unwrap();
    lab.in_lab(&["kiln", "apply", "--yes"]).unwrap();
    for (node, ip) in [("e2e1", "10.77.0.21"), ("e2e2", "10.77.0.22")] {
        let output = ssh(&lab, &key, ip, "hostname; ip -4 -o addr show scope global");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "ssh {ip}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(text.lines().next(), Some(node), "hostname of {ip}: {text}");
        assert!(
            text.contains(&format!("{ip}/24")),
            "{node} has not {ip}/24: {text}"
        );
    }
    let states = node_states(&lab);
    assert_eq!(
        states,
        [
            ("e2e1".into(), "healthy".into()),
            ("e2e2".into(), "healthy".into())
        ],
        "after apply"
    );

    // Storage: the apply prepared TrueNAS and checked both nodes; the check
    // again, on its own: iSCSI with CHAP and NFS from each guest's kernel.
    let checks = stdout_json(&lab, &["kiln", "storage", "check", "-o", "json"]);
    let checks = checks.as_array().unwrap_or_else(|| panic!("{checks}"));
    assert_eq!(checks.len(), 2, "{checks:?}");
    for check in checks {
        for protocol in ["iscsi", "nfs"] {
            assert_eq!(check[protocol]["outcome"], "passed", "{check}");
        }
        let steps: Vec<&str> = check["iscsi"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|step| step["name"].as_str())
            .collect();
        for step in ["discovery", "CHAP", "login", "mkfs", "read back", "logout"] {
            assert!(steps.contains(&step), "no `{step}` in {check}");
        }
    }
    let initiator = ssh(
        &lab,
        &key,
        "10.77.0.21",
        "cat /etc/iscsi/initiatorname.iscsi",
    );
    assert!(
        String::from_utf8_lossy(&initiator.stdout)
            .contains("InitiatorName=iqn.2026-01.invalid.kiln:e2e:e2e1"),
        "e2e1's initiator name"
    );
    assert!(
        nas_calls(&lab)
            .iter()
            .any(|call| call["method"] == "api_key.create"),
        "the apply made democratic-csi's API key"
    );
    let calls_before = nas_calls(&lab).len();
    lab.in_lab(&["kiln", "apply", "--yes"]).unwrap();
    let calls = nas_calls(&lab);
    let second: Vec<&Value> = calls[calls_before..].iter().collect();
    assert!(!second.is_empty(), "the second apply read TrueNAS");
    let changing: Vec<&str> = second
        .iter()
        .filter_map(|call| call["method"].as_str())
        .filter(|method| {
            [
                "create", "update", "delete", "control", "start", "stop", "restart", "reload",
            ]
            .iter()
            .any(|verb| method.ends_with(verb))
        })
        .collect();
    assert!(
        changing.is_empty(),
        "a settled apply changed TrueNAS: {changing:?}"
    );

    // `kiln agent install`: agents that match are left running; a changed
    // config redeploys and restarts only the named node's agent.
    let agent_started = |ip: &str| {
        let output = ssh(
            &lab,
            &key,
            ip,
            "systemctl show -p ActiveEnterTimestampMonotonic --value kiln-agent.service",
        );
        assert!(output.status.success(), "systemctl show on {ip}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let started = [agent_started("10.77.0.21"), agent_started("10.77.0.22")];
    lab.in_lab(&["kiln", "agent", "install"]).unwrap();
    assert_eq!(
        [agent_started("10.77.0.21"), agent_started("10.77.0.22")],
        started,
        "an unchanged agent is not restarted"
    );
    let slower = scratch.path().join("e2e-slower.yaml");
    std::fs::write(&slower, inventory("KILN_E2E_SSH_KEY", INTERVAL_SECS + 1)).unwrap();
    let slower_arg = slower.display().to_string();
    lab.in_lab(&["kiln", "-i", &slower_arg, "agent", "install", "e2e1"])
        .unwrap();
    assert_ne!(agent_started("10.77.0.21"), started[0], "e2e1 redeployed");
    assert_eq!(agent_started("10.77.0.22"), started[1], "e2e2 untouched");
    let config = ssh(
        &lab,
        &key,
        "10.77.0.21",
        "sudo cat /etc/kiln-agent/config.json",
    );
    let config = String::from_utf8_lossy(&config.stdout);
    assert!(
        config.contains(&format!("\"interval_secs\": {}", INTERVAL_SECS + 1)),
        "{config}"
    );

    // sshd stopped on e2e2 turns it failing within two intervals. The SSH
    // session that stops it survives (its sshd child stays) and starts it again.
    let stopper = std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            ssh(&lab, &key, "10.77.0.22", "sudo systemctl stop ssh.service ssh.socket; sleep 25; sudo systemctl start ssh.service")
        });
        std::thread::sleep(Duration::from_secs(2));
        let stopped = Instant::now();
        wait_until(
            "e2e2 failing after sshd stopped",
            Duration::from_secs(60),
            || node_states(&lab).contains(&("e2e2".into(), "failing".into())),
        );
        let took = stopped.elapsed();
        (handle.join().unwrap(), took)
    });
    assert!(
        stopper.1 <= Duration::from_secs(2 * INTERVAL_SECS + 3),
        "e2e2 turned failing {:?} after sshd stopped: more than two intervals",
        stopper.1
    );
    assert!(
        stopper.0.status.success(),
        "the sshd stopper: {}",
        String::from_utf8_lossy(&stopper.0.stderr)
    );
    wait_until("e2e2 healthy again", Duration::from_secs(60), || {
        node_states(&lab).contains(&("e2e2".into(), "healthy".into()))
    });

    // A node-loss drill: detect, recover, and a report whose phases add up.
    let report_path = scratch.path().join("drill.json");
    let report_arg = report_path.display().to_string();
    lab.in_lab(&[
        "kiln",
        "drill",
        "node-loss",
        "--target",
        "e2e1",
        "--yes",
        "--report",
        &report_arg,
    ])
    .unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["targets"][0]["node"], "e2e1", "{report}");
    let phases: f64 = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|phase| phase["seconds"].as_f64().unwrap())
        .sum();
    let rto = report["rto_seconds"].as_f64().unwrap();
    assert!(
        (phases - rto).abs() <= 1.0,
        "phases add up to {phases} s, RTO {rto} s: {report}"
    );
    assert!(
        report["time_to_detect_seconds"].as_f64().unwrap() > 0.0,
        "{report}"
    );

    // A nightly copy that passes and leaves nothing behind.
    let junit = scratch.path().join("nightly.xml");
    let junit_arg = junit.display().to_string();
    lab.in_lab(&[
        "kiln",
        "nightly",
        "--profile",
        "nightly",
        "--junit",
        &junit_arg,
    ])
    .unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"failures="0""#) && xml.contains("nightly-e2e1"),
        "{xml}"
    );
    let leftovers: Vec<_> = lab_vms(&lab)
        .into_iter()
        .filter(|vm| vm.2.contains("kiln-e2e-nightly"))
        .collect();
    assert!(leftovers.is_empty(), "the nightly left {leftovers:?}");

    // A nightly copy that cannot boot fails, names node and phase, and still cleans up.
    let broken = lab
        .in_lab_output(&[
            "kiln",
            "nightly",
            "--profile",
            "broken",
            "--timeout",
            "90s",
            "--junit",
            &junit_arg,
        ])
        .unwrap();
    assert!(
        !broken.status.success(),
        "a nightly whose node never boots passed"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testcase name="boot" classname="broken-e2e2""#)
            && xml.contains("<failure"),
        "the JUnit file does not show broken-e2e2's boot failing: {xml}"
    );
    let leftovers: Vec<_> = lab_vms(&lab)
        .into_iter()
        .filter(|vm| vm.2.contains("kiln-e2e-broken"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the failed nightly left {leftovers:?}"
    );

    // Destroy: only the templates remain.
    lab.in_lab(&["kiln", "destroy", "--yes"]).unwrap();
    let left: Vec<_> = lab_vms(&lab).into_iter().filter(|vm| vm.0 < 9000).collect();
    assert!(left.is_empty(), "destroy left {left:?}");

    // The lab goes down and leaves no namespace, QEMU process or disk.
    teardown.now();
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let namespace = format!("kiln-lab-{name}");
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&namespace),
        "namespace {namespace} is still there"
    );
    let processes = Command::new("pgrep")
        .args(["-af", "qemu-system"])
        .output()
        .unwrap();
    let ours: Vec<String> = String::from_utf8_lossy(&processes.stdout)
        .lines()
        .filter(|line| line.contains(&name))
        .map(str::to_owned)
        .collect();
    assert!(ours.is_empty(), "QEMU processes left: {ours:?}");
    assert!(!dir.exists(), "{} is still there", dir.display());
}
