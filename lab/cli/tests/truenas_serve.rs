//! `kiln-lab serve-truenas` on its own, driven by a third-party client: the Python
//! `pytruenas` library (the script is `lab/truenas/tests/pytruenas_flow.py`) runs dataset →
//! zvol → portal → initiator group → extent → target → target-extent → NFS share → service
//! start against it. Also: the credentials file (mode 0600, `{"endpoint","fingerprint",
//! "api_key"}`), the JSONL request log with the key masked, and a clean stop on SIGTERM.
//!
//! Python comes from `$KILN_PYTHON` or the project venv `<repo>/.venv/bin/python3`, which
//! `cargo xtask setup` creates from `xtask/python-requirements.txt`.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python3");
    assert!(
        venv.exists(),
        "no Python with pytruenas: {} is missing and KILN_PYTHON is not set; run `cargo xtask setup` (it creates the venv from xtask/python-requirements.txt)",
        venv.display()
    );
    venv
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../truenas/tests/pytruenas_flow.py")
}

/// Waits (bounded) until the server has written its credentials.
fn wait_for(path: &Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(value) = serde_json::from_str(&text)
        {
            return value;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("kiln-lab serve-truenas exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no credentials file at {} within 30 s", path.display());
}

#[test]
fn pytruenas_drives_serve_truenas_through_the_storage_flow() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("truenas.json");
    let log = dir.path().join("calls.jsonl");
    let mut server = Command::new(env!("CARGO_BIN_EXE_kiln-lab"))
        .args([
            "serve-truenas",
            "--listen",
            "127.0.0.1:0",
            "--credentials-out",
        ])
        .arg(&credentials)
        .arg("--request-log")
        .arg(&log)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let creds = wait_for(&credentials, &mut server);
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let keys: Vec<&String> = creds.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["api_key", "endpoint", "fingerprint"]);
    let api_key = creds["api_key"].as_str().unwrap().to_string();
    assert!(
        creds["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );

    let output = Command::new(&python)
        .arg(script())
        .arg(&credentials)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    // Stop it as an operator would, then look at what it left.
    let pid = server.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(
        output.status.success() && stdout.contains("PYTRUENAS-OK"),
        "pytruenas flow failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(status.success(), "serve-truenas ended with {status}");
    assert!(
        !credentials.exists(),
        "the credentials file is removed on exit"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&api_key),
        "the API key reached the request log"
    );
    let calls: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let methods: Vec<&str> = calls
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    for expected in [
        "auth.login_with_api_key",
        "pool.dataset.create",
        "iscsi.portal.create",
        "iscsi.initiator.create",
        "iscsi.extent.create",
        "iscsi.target.create",
        "iscsi.targetextent.create",
        "sharing.nfs.create",
        "service.control",
        "core.get_jobs",
    ] {
        assert!(
            methods.contains(&expected),
            "{expected} missing from {methods:?}"
        );
    }
    for call in &calls {
        let keys: Vec<&String> = call.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error_code", "method", "ok", "params", "time"]);
    }
    // The two refused calls at the end: a string id (-32602) and a missing target (-32602).
    let refused: Vec<i64> = calls
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["error_code"].as_i64().unwrap())
        .collect();
    assert_eq!(refused, [-32602, -32602]);
    // The zvol is a sparse file of its full size.
    let zvol = dir.path().join("data/zvol/tank/k8s/px/iscsi/pvc-1");
    assert_eq!(std::fs::metadata(zvol).unwrap().len(), 1 << 30);
}

/// A "nas" namespace (10.213.12.1) and a "node" one (10.213.12.2) joined by a veth; on drop,
/// whatever still runs in them is killed and both are deleted.
struct Namespaces {
    nas: String,
    node: String,
}

impl Namespaces {
    fn new() -> Self {
        let prefix = format!("ktc-{}", std::process::id());
        let ns = Self {
            nas: format!("{prefix}-nas"),
            node: format!("{prefix}-node"),
        };
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &ns.nas]);
        ip(&["netns", "add", &ns.node]);
        ip(&["-n", &ns.nas, "link", "set", "lo", "up"]);
        ip(&["-n", &ns.node, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &ns.nas, "link", "add", "nas0", "type", "veth", "peer", "name", "node0", "netns",
            &ns.node,
        ]);
        ip(&[
            "-n",
            &ns.nas,
            "addr",
            "add",
            "10.213.12.1/24",
            "dev",
            "nas0",
        ]);
        ip(&[
            "-n",
            &ns.node,
            "addr",
            "add",
            "10.213.12.2/24",
            "dev",
            "node0",
        ]);
        ip(&["-n", &ns.nas, "link", "set", "nas0", "up"]);
        ip(&["-n", &ns.node, "link", "set", "node0", "up"]);
        ns
    }

    fn pids(&self, ns: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.nas, &self.node] {
            for pid in self.pids(ns) {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Inside the lab: `serve-truenas --namespace` runs tgt and nfs-ganesha next to the API, and
/// pytruenas from a node namespace sets up what libiscsi then logs in to. Root only (network
/// namespaces), with `cargo xtask setup`'s packages.
#[test]
fn serve_truenas_in_a_namespace_serves_the_api_with_tgt_and_ganesha_behind_it() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    assert!(root, "this test needs root (network namespaces)");
    let python = python();
    let ns = Namespaces::new();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("truenas.json");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.nas])
        .arg(env!("CARGO_BIN_EXE_kiln-lab"))
        .args([
            "serve-truenas",
            "--namespace",
            &ns.nas,
            "--listen",
            "10.213.12.1:443",
            "--credentials-out",
        ])
        .arg(&credentials)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let creds = wait_for(&credentials, &mut server);
    assert_eq!(creds["endpoint"], "https://10.213.12.1:443");
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.node])
        .arg(&python)
        .arg(script())
        .arg(&credentials)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let listing = Command::new("timeout")
        .args([
            "30",
            "ip",
            "netns",
            "exec",
            &ns.node,
            "iscsi-ls",
            "-s",
            "-i",
            "iqn.2005-03.org.open-iscsi:px-n1",
            "iscsi://10.213.12.1",
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let daemons: Vec<String> = ns
        .pids(&ns.nas)
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    assert!(
        output.status.success() && stdout.contains("PYTRUENAS-OK"),
        "pytruenas flow failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        daemons.contains(&"tgtd".to_string()) && daemons.contains(&"ganesha.nfsd".to_string()),
        "{daemons:?}"
    );
    assert!(
        listing.contains("Target:iqn.2005-10.org.freenas.ctl:pvc-1") && listing.contains("Lun:1"),
        "{listing}"
    );
    assert!(status.success(), "serve-truenas ended with {status}");
    // The servers stop with it.
    let left: Vec<String> = ns.pids(&ns.nas);
    assert!(left.is_empty(), "left running in the namespace: {left:?}");
}
