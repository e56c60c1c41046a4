//! The Vault backend against a real OpenBao dev server (`bao server -dev`
//! from the project venv), one server per test.

mod secrets_bao;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use kiln::secrets::ClusterSecrets;
use kiln_secrets::lock::Holder;
use kiln_secrets::vault::Credentials;
use kiln_secrets::{
    Cas, Data, Dirs, FileStore, LockError, LockRequest, SecretStore, SecretsError,
    file::single_value,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use secrets_bao::{Bao, ROOT_TOKEN};
use serde_json::json;

fn data(pairs: &[(&str, &str)]) -> Data {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), SecretString::from(*value)))
        .collect()
}

fn token(value: &str) -> Credentials {
    Credentials::Token(SecretString::from(value))
}

#[tokio::test]
async fn write_read_list_and_metadata() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let version = store
        .write(
            "app/db",
            data(&[("user", "kiln"), ("password", "p4ss")]),
            Cas::Absent,
        )
        .await
        .unwrap();
    assert_eq!(version, 1);

    let entry = store.read("app/db").await.unwrap().unwrap();
    assert_eq!(entry.data["password"].expose_secret(), "p4ss");
    assert_eq!(entry.meta.version, 1);
    assert_eq!(entry.meta.location, "secret/kiln/home/app/db");
    assert!(store.read("app/none").await.unwrap().is_none());

    store
        .write("ssh/kiln", data(&[("k", "v")]), Cas::Any)
        .await
        .unwrap();
    let listed = store.list().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|meta| meta.name.as_str()).collect();
    assert_eq!(names, ["app/db", "ssh/kiln"]);
    assert!(
        listed
            .iter()
            .all(|meta| meta.created.is_some() && meta.updated.is_some())
    );

    // It really is KV v2 at the documented path: read it as any client would.
    let raw = bao
        .admin(Method::GET, "secret/data/kiln/home/app/db", None)
        .await;
    assert_eq!(raw["data"]["data"]["user"], "kiln");
}

#[tokio::test]
async fn check_and_set_conflicts_are_typed_errors() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    store
        .write("k", data(&[("v", "1")]), Cas::Absent)
        .await
        .unwrap();
    let error = store
        .write("k", data(&[("v", "2")]), Cas::Absent)
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::CasConflict { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("secret/kiln/home/k"), "{message}");

    assert_eq!(
        store
            .write("k", data(&[("v", "2")]), Cas::Version(1))
            .await
            .unwrap(),
        2
    );
    let error = store
        .write("k", data(&[("v", "3")]), Cas::Version(1))
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::CasConflict { .. }), "{error}");
    let entry = store.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data["v"].expose_secret(), "2");

    // Soft-deleted (as from the UI): no readable value, so "absent" holds.
    bao.admin(Method::DELETE, "secret/data/kiln/home/k", None)
        .await;
    assert!(store.read("k").await.unwrap().is_none());
    assert_eq!(
        store
            .write("k", data(&[("v", "4")]), Cas::Absent)
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn approle_login_with_the_least_privilege_policy() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let (role_id, secret_id) = bao
        .approle(json!({ "token_policies": ["kiln"], "token_ttl": "1h" }))
        .await;
    let store = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        // Ids as read from files: a trailing newline must not matter.
        role_id: SecretString::from(format!("{role_id}\n")),
        secret_id: SecretString::from(format!(" {secret_id}\n")),
    });
    store
        .write("ssh/kiln", data(&[("private_key", "x")]), Cas::Absent)
        .await
        .unwrap();
    assert!(store.read("ssh/kiln").await.unwrap().is_some());
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert_eq!(store.client().counters().1, 1, "one login");

    // The policy confines kiln to its cluster's folder.
    let other = kiln_secrets::VaultStore::new(
        bao.settings(Credentials::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.clone().into(),
            secret_id: secret_id.clone().into(),
        }),
        "someone-else",
    )
    .unwrap();
    let error = other
        .write("x", data(&[("a", "b")]), Cas::Any)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("403") && error.contains("permission denied"),
        "{error}"
    );
    assert_eq!(
        other.client().counters().1,
        1,
        "a 403 from the policy is not an expired token: no second login"
    );

    let refused = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        role_id: role_id.into(),
        secret_id: "not-the-secret-id".into(),
    });
    let error = refused.read("ssh/kiln").await.unwrap_err().to_string();
    assert!(error.contains("login with approle"), "{error}");
    assert!(!error.contains("not-the-secret-id"), "{error}");
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_during_a_long_run() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let created = bao
        .admin(
            Method::POST,
            "auth/token/create",
            Some(json!({
                "policies": ["kiln"], "ttl": "6s", "explicit_max_ttl": "5m",
                "renewable": true, "no_default_policy": true,
            })),
        )
        .await;
    let short = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let store = bao.store(token(&short));
    store
        .write("k", data(&[("v", "1")]), Cas::Any)
        .await
        .unwrap();
    // Over two TTLs: without renewal the token would be long dead. A 6 s
    // TTL leaves 2 s between a renewal (at 4 s) and expiry on a busy box.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let entry = store.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data["v"].expose_secret(), "1");
    let (renewals, logins) = store.client().counters();
    assert!(renewals >= 2, "renewed {renewals} times");
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn approle_logs_in_again_when_its_token_cannot_be_renewed() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let (role_id, secret_id) = bao
        .approle(json!({
            "token_policies": ["kiln"], "token_ttl": "3s", "token_max_ttl": "3s",
        }))
        .await;
    let store = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        role_id: role_id.into(),
        secret_id: secret_id.into(),
    });
    store
        .write("k", data(&[("v", "1")]), Cas::Any)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(store.read("k").await.unwrap().is_some());
    let (_, logins) = store.client().counters();
    assert!(logins >= 2, "logged in {logins} times");
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

fn stale_holder() -> Holder {
    let long_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    Holder {
        run_id: "0190-dead-run".to_owned(),
        user: "ops".to_owned(),
        host: "old-laptop".to_owned(),
        pid: 4242,
        command: "kiln apply".to_owned(),
        started: humantime::format_rfc3339_seconds(long_ago).to_string(),
        renewed: humantime::format_rfc3339_seconds(long_ago).to_string(),
        ttl_seconds: 600,
    }
}

#[tokio::test]
async fn a_stale_lock_is_taken_over_and_a_live_one_is_not() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let stale = stale_holder();
    store
        .write(
            "lock",
            data(&[
                ("state", "held"),
                ("holder", &serde_json::to_string(&stale).unwrap()),
            ]),
            Cas::Absent,
        )
        .await
        .unwrap();

    let lock = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert_eq!(lock.taken_over().unwrap().run_id, "0190-dead-run");
    assert_eq!(lock.location(), "secret/kiln/home/lock");

    let error = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap_err();
    let LockError::Held { holder, .. } = &error else {
        panic!("expected a held lock, got {error}");
    };
    assert_eq!(holder.run_id, lock.holder().run_id);
    assert!(error.to_string().contains(&lock.holder().run_id));

    lock.release().await.unwrap();
    let again = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert!(
        again.taken_over().is_none(),
        "a released lock is free, not stale"
    );
    again.release().await.unwrap();
    assert!(
        store.list().await.unwrap().is_empty(),
        "the lock is not listed as a secret"
    );
}

#[tokio::test]
async fn a_held_lock_is_renewed_so_it_never_looks_stale() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let mut request = LockRequest::new("home", "kiln apply");
    request.ttl = Duration::from_secs(3);
    let lock = store.lock(request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let error = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Held { .. }), "{error}");
    assert!(!lock.is_lost());
    lock.release().await.unwrap();
}

#[tokio::test]
async fn a_lock_dropped_without_release_expires_and_is_taken_over() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let mut request = LockRequest::new("home", "kiln apply");
    request.ttl = Duration::from_secs(2);
    let dropped = store.lock(request).await.unwrap();
    let run_id = dropped.holder().run_id.clone();
    drop(dropped);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let next = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert_eq!(next.taken_over().unwrap().run_id, run_id);
    next.release().await.unwrap();
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

/// Kills the helper process (by its pid, through `Child`) if the test
/// fails before it exits.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
