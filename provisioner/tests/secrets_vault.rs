//! The Vault backend against a real OpenBao dev server (`bao server -dev`
//! from the project venv), one server per test.

#[path = "../../clients/secrets/tests/secrets_bao/mod.rs"]
mod secrets_bao;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use kiln::secrets::ClusterSecrets;
use kiln_secrets::vault::Credentials;
use kiln_secrets::{Cas, Dirs, FileStore, LockRequest, SecretStore, file::single_value};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use secrets_bao::{Bao, ROOT_TOKEN};
use serde_json::json;

/// Kills the helper process (by its pid, through `Child`) if the test
/// fails before it exits.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token(value: &str) -> Credentials {
    Credentials::Token(SecretString::from(value))
}

#[tokio::test]
async fn a_missing_path_names_the_reference_and_where_it_is_used() {
    let bao = Bao::start().await;
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        state: root.path().join("state"),
        config: root.path().join("config"),
    };
    FileStore::new(&dirs, "home")
        .write("vault-token", single_value(ROOT_TOKEN.into()), Cas::Any)
        .await
        .unwrap();
    let text = format!(
        "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: node1, role: host, ip: 10.0.0.10, baremetal: {{}}}}
ssh:
  key: vault:secret/kiln/flux#deploy_key
secrets:
  backend: vault
  vault:
    address: {}
    auth: {{method: token, token: 'file:vault-token'}}
",
        bao.address
    );
    let inventory = kiln_inventory::parse("kiln.yaml", &text).unwrap();
    let secrets = ClusterSecrets::open(&inventory, &dirs).await.unwrap();
    let used = inventory
        .secret_references()
        .into_iter()
        .find(|used| used.path.to_string() == "ssh.key")
        .unwrap();

    let error = secrets.resolve(&used).await.unwrap_err().to_string();
    assert!(
        error.contains("`vault:secret/kiln/flux#deploy_key`"),
        "{error}"
    );
    assert!(error.contains("`ssh.key`"), "{error}");
    assert!(error.contains("no secret at `secret/kiln/flux`"), "{error}");

    bao.admin(
        Method::POST,
        "secret/data/kiln/flux",
        Some(json!({ "data": { "other": "x" } })),
    )
    .await;
    let error = secrets.resolve(&used).await.unwrap_err().to_string();
    assert!(
        error.contains("has no key `deploy_key` (it has: other)"),
        "{error}"
    );

    bao.admin(
        Method::POST,
        "secret/data/kiln/flux",
        Some(json!({ "data": { "deploy_key": "KEY" } })),
    )
    .await;
    assert_eq!(secrets.resolve(&used).await.unwrap().expose_secret(), "KEY");
}

/// Not a test on its own: the lock-holding process that
/// `two_processes_contend_for_the_lock` starts (the test binary re-run
/// with `--ignored --exact`). Holds the lock until its stdin closes.
#[tokio::test]
#[ignore = "helper process for two_processes_contend_for_the_lock"]
async fn lock_holder_process() {
    let address = std::env::var("KILN_TEST_BAO_ADDR").expect("started by the contention test");
    let settings = kiln_secrets::vault::VaultSettings {
        address,
        namespace: None,
        mount: "secret".to_owned(),
        trust: kiln_secrets::vault::TlsTrust::PlainLoopback,
        credentials: token(ROOT_TOKEN),
    };
    let store = kiln_secrets::VaultStore::new(settings, "home").unwrap();
    let lock = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    println!("LOCKED {}", lock.holder().run_id);
    std::io::stdout().flush().unwrap();
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
        .await
        .unwrap();
    lock.release().await.unwrap();
}

#[tokio::test]
async fn two_processes_contend_for_the_lock() {
    let bao = Bao::start().await;
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let config = root.path().join("config");
    let dirs = Dirs {
        state: state.clone(),
        config: config.clone(),
    };
    FileStore::new(&dirs, "home")
        .write("vault-token", single_value(ROOT_TOKEN.into()), Cas::Any)
        .await
        .unwrap();
    let inventory = root.path().join("kiln.yaml");
    std::fs::write(
        &inventory,
        format!(
            "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: node1, role: host, ip: 10.0.0.10, baremetal: {{}}}}
secrets:
  backend: vault
  vault:
    address: {}
    auth: {{method: token, token: 'file:vault-token'}}
",
            bao.address
        ),
    )
    .unwrap();

    let mut holder = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args(["lock_holder_process", "--exact", "--ignored", "--nocapture"])
            .env("KILN_TEST_BAO_ADDR", &bao.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(holder.0.stdout.take().unwrap()).lines();
    let run_id = loop {
        let line = lines.next().expect("the holder said LOCKED").unwrap();
        if let Some(run_id) = line.strip_prefix("LOCKED ") {
            break run_id.to_owned();
        }
    };

    let kiln = |dirs: &Dirs| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["-i"])
            .arg(&inventory)
            .args(["secrets", "rotate", "generated/ssh/kiln", "--yes"])
            .env("KILN_STATE_DIR", &dirs.state)
            .env("KILN_CONFIG_DIR", &dirs.config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let refused = kiln(&dirs);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&run_id), "names the holder's run: {stderr}");
    assert!(stderr.contains("is locked by run"), "{stderr}");

    drop(holder.0.stdin.take());
    assert!(
        holder.0.wait().unwrap().success(),
        "the holder released cleanly"
    );
    let done = kiln(&dirs);
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[tokio::test]
async fn trace_logs_and_output_never_show_the_token() {
    let bao = Bao::start().await;
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        state: root.path().join("state"),
        config: root.path().join("config"),
    };
    FileStore::new(&dirs, "home")
        .write("vault-token", single_value(ROOT_TOKEN.into()), Cas::Any)
        .await
        .unwrap();
    let inventory = root.path().join("kiln.yaml");
    std::fs::write(
        &inventory,
        format!(
            "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: node1, role: host, ip: 10.0.0.10, baremetal: {{}}}}
secrets:
  backend: vault
  vault:
    address: {}
    auth: {{method: token, token: 'file:vault-token'}}
",
            bao.address
        ),
    )
    .unwrap();
    let mut printed = String::new();
    for args in [
        &["secrets", "init"][..],
        &["secrets", "rotate", "generated/ssh/kiln", "--yes"],
        &["-o", "json", "secrets", "list"],
        &["secrets", "list"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("-i")
            .arg(&inventory)
            .args(["--log-level", "trace"])
            .args(args)
            .env("KILN_STATE_DIR", &dirs.state)
            .env("KILN_CONFIG_DIR", &dirs.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(0), "{args:?}: {text}");
        printed.push_str(&text);
    }
    assert!(printed.contains("generated/ssh/kiln"), "{printed}");
    assert!(
        printed.contains("path \"secret/data/kiln/home/*\""),
        "{printed}"
    );
    assert!(!printed.contains(ROOT_TOKEN), "{printed}");
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
}
