//! A third-party PVE client drives the lab: the Python `proxmoxer` library with token auth
//! runs clone → config → start → status/current → task waits, then logs in with a
//! password (ticket + CSRF) and writes. Passes against the emulator
//! (kiln-lab sim); the same script is what one would run against a real PVE.
//!
//! Python comes from `$KILN_PYTHON` or the project venv `<repo>/.venv/bin/python3`, which
//! `cargo xtask test` creates from `xtask/python-requirements.txt`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use kiln_lab_pve::LabConfig;

const SCRIPT: &str = r#"
import os, sys, warnings
warnings.filterwarnings("ignore")
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks

px = ProxmoxAPI(
    os.environ["LAB_HOST"], port=int(os.environ["LAB_PORT"]), service="PVE",
    user=os.environ["LAB_USER"], token_name=os.environ["LAB_TOKEN_NAME"],
    token_value=os.environ["LAB_TOKEN_SECRET"], verify_ssl=False, timeout=20,
)

def wait(upid):
    status = Tasks.blocking_status(px, upid, timeout=30, polling_interval=0.05)
    assert status is not None, "task did not stop: " + upid
    assert status["exitstatus"] == "OK", status
    return status

assert px.version.get()["release"] == "9.1"
node = px.nodes("pve1")
newid = int(px.cluster.nextid.get())
wait(node.qemu(9000).clone.post(newid=newid, name="px-web1", full=0))
wait(node.qemu(newid).config.post(cores=2, memory="2048", ipconfig0="ip=10.9.0.5/24,gw=10.9.0.1", tags="web,kiln-px"))
node.qemu(newid).config.put(description="set by proxmoxer")
config = node.qemu(newid).config.get()
assert config["cores"] == 2, config
assert config["tags"] == "kiln-px;web", config
assert config["description"] == "set by proxmoxer", config
start = node.qemu(newid).status.start.post()
wait(start)
current = node.qemu(newid).status.current.get()
assert current["status"] == "running", current
assert current["name"] == "px-web1", current
vms = [v for v in px.cluster.resources.get(type="vm") if v["vmid"] == newid]
assert vms and vms[0]["node"] == "pve1" and vms[0]["tags"] == "kiln-px;web", vms
log = node.tasks(start).log.get()
assert log[-1]["t"] == "TASK OK", log
try:
    px.cluster.nextid.get(vmid=newid)
    raise AssertionError("nextid accepted a taken vmid")
except ResourceException as e:
    assert e.status_code == 400, e
    assert e.errors == {"vmid": "VM %d already exists" % newid}, e.errors
    assert e.content == "Parameter verification failed.", e.content
try:
    node.qemu(9000).clone.post(newid=newid)
    raise AssertionError("clone onto a taken vmid was accepted")
except ResourceException as e:
    assert e.status_code == 500 and "already exists" in e.content, e
# Ticket auth (user + password): proxmoxer logs in and sends the CSRF token on writes.
px2 = ProxmoxAPI(
    os.environ["LAB_HOST"], port=int(os.environ["LAB_PORT"]), service="PVE",
    user=os.environ["LAB_USER"], password=os.environ["LAB_PASSWORD"], verify_ssl=False, timeout=20,
)
px2.nodes("pve1").qemu(newid).config.put(description="via ticket")
assert px2.nodes("pve1").qemu(newid).config.get()["description"] == "via ticket"
print("PROXMOXER-OK", newid)
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KILN_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python3");
    if !venv.exists() {
        panic!(
            "no Python with proxmoxer: {} is missing and KILN_PYTHON is not set; run `cargo xtask test` (it creates the venv from xtask/python-requirements.txt)",
            venv.display()
        );
    }
    venv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_clone_config_start_status_and_task_wait() {
    let python = python();
    let lab = common::start(LabConfig::default()).await;
    lab.lab.add_template("pve1", 9000, "debian-12").unwrap();
    let (user, token_name) = lab.lab.token_id.split_once('!').unwrap();
    let output = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .env("LAB_HOST", lab.lab.local_addr.ip().to_string())
        .env("LAB_PORT", lab.lab.local_addr.port().to_string())
        .env("LAB_USER", user)
        .env("LAB_TOKEN_NAME", token_name)
        .env("LAB_TOKEN_SECRET", &lab.lab.token_secret)
        .env("LAB_PASSWORD", &lab.lab.password)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run `cargo xtask test`",
                python.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PROXMOXER-OK"),
        "proxmoxer script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Everything it sent was answered by the lab and logged.
    let requests = lab.lab.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("/clone") && r.status == 200)
    );
    let token = requests
        .iter()
        .filter(|r| r.auth.as_deref() == Some("PVEAPIToken=kiln@pve!kiln=***"))
        .count();
    let ticket = requests
        .iter()
        .filter(|r| r.auth.as_deref() == Some("PVEAuthCookie=***"))
        .count();
    assert!(
        token > 10 && ticket >= 2,
        "{token} token and {ticket} ticket requests"
    );
}
