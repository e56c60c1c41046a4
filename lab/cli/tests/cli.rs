//! The `kiln-lab` binary: serve writes the credentials file, env and exec hand them on;
//! `down` and a qemu lab's `--publish` refuse what they cannot do (the qemu lab itself is
//! tested in `qemu_guest.rs`).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kiln-lab");

/// Kills the server on drop, so a failing test leaves no process behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn down_without_a_lab_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["down", "--data-dir"])
        .arg(dir.path().join("nothing-here"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no qemu lab there?"), "{stderr}");
}

#[test]
fn qemu_lab_refuses_to_publish_on_a_non_loopback_address_before_making_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .args(["serve", "--backend", "qemu", "--instance", "cli-refused"])
        .arg("--data-dir")
        .arg(&data)
        .args(["--publish", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(!data.exists(), "nothing may be made: {}", data.display());
    assert!(!Path::new("/run/netns/kiln-lab-cli-refused").exists());
}

#[test]
fn qemu_lab_refuses_a_data_directory_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--backend", "qemu", "--instance", "cli-foreign"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(!Path::new("/run/netns/kiln-lab-cli-foreign").exists());
}

#[test]
fn serve_writes_credentials_and_env_exec_pass_them_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let creds = state.join("kiln-lab/credentials.json");
    let log = dir.path().join("requests.jsonl");
    let _server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--backend",
                "sim",
                "--nodes",
                "3",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--request-log")
            .arg(&log)
            .env("XDG_STATE_HOME", &state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&creds);
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let endpoint = json["endpoint"].as_str().unwrap();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    assert_eq!(json["token_id"], "kiln@pve!kiln");
    assert_eq!(json["fingerprint"].as_str().unwrap().len(), 32 * 3 - 1);
    let secret = json["token_secret"].as_str().unwrap();

    let env = Command::new(BIN)
        .arg("env")
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&env.stdout);
    assert!(
        env.contains(&format!("export KILN_PROXMOX_ENDPOINT='{endpoint}'")),
        "{env}"
    );
    assert!(
        env.contains(&format!(
            "export KILN_PROXMOX_TOKEN='kiln@pve!kiln={secret}'"
        )),
        "{env}"
    );
    assert!(env.contains("export KILN_PROXMOX_FINGERPRINT='"), "{env}");

    let exec = Command::new(BIN)
        .args(["exec", "--credentials"])
        .arg(&creds)
        .args([
            "--",
            "sh",
            "-c",
            "echo \"$KILN_PROXMOX_ENDPOINT|$KILN_PROXMOX_TOKEN\"; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(exec.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        format!("{endpoint}|kiln@pve!kiln={secret}")
    );
}

#[test]
fn env_without_a_running_lab_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("env")
        .env("XDG_STATE_HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `kiln-lab serve` running?"));
}
