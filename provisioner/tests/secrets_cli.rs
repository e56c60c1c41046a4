//! `kiln secrets` with the file backend, through the real binary: exit
//! codes, the run lock between processes, and that no value is printed.

// Test helpers set up fixtures: a failed setup should stop the test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kiln_secrets::{Dirs, FileStore, LockRequest, SecretStore};

const CANARY: &str = "canary-5e1d-never-printed";

struct Env {
    root: tempfile::TempDir,
    inventory: PathBuf,
}

impl Env {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let inventory = root.path().join("kiln.yaml");
        std::fs::write(
            &inventory,
            "cluster: {name: home}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
nodes:
  - {name: node1, role: host, ip: 10.0.0.10, baremetal: {}}
ssh: {key: 'file:ssh/own'}
",
        )
        .unwrap();
        Self { root, inventory }
    }

    fn dirs(&self) -> Dirs {
        Dirs {
            state: self.root.path().join("state"),
            config: self.root.path().join("config"),
        }
    }

    fn kiln(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let dirs = self.dirs();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("-i")
            .arg(&self.inventory)
            .args(["--log-level", "trace"])
            .args(args)
            .env("KILN_STATE_DIR", &dirs.state)
            .env("KILN_CONFIG_DIR", &dirs.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn identity(&self) -> PathBuf {
        self.dirs().config.join("age-identity.txt")
    }
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "{}", text(output));
    text(output)
}

fn no_file_contains(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} holds the value in clear",
            path.display()
        );
    }
}

#[test]
fn set_list_rotate_never_print_a_value() {
    let env = Env::new();
    ok(&env.kiln(&["secrets", "init"], None));
    ok(&env.kiln(&["secrets", "set", "ssh/own"], Some(&format!("{CANARY}\n"))));
    ok(&env.kiln(&["secrets", "rotate", "generated/ssh/kiln", "--yes"], None));

    let listed = ok(&env.kiln(&["secrets", "list"], None));
    assert!(
        listed.contains("ssh/own") && listed.contains("generated/ssh/kiln"),
        "{listed}"
    );
    assert!(listed.contains("ssh.key  →  file:ssh/own"), "{listed}");
    let json = env.kiln(&["-o", "json", "secrets", "list"], None);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["entries"].as_array().unwrap().len(), 2);
    assert_eq!(parsed["references"][0]["path"], "ssh.key");

    for output in [listed, text(&json)] {
        assert!(!output.contains(CANARY), "{output}");
        assert!(!output.contains("PRIVATE KEY"), "{output}");
    }
    no_file_contains(&env.dirs().state, CANARY);
    no_file_contains(&env.dirs().state, "OPENSSH PRIVATE KEY");
}

#[test]
fn rotate_asks_first_and_names_what_it_breaks() {
    let env = Env::new();
    let refused = env.kiln(&["secrets", "rotate", "generated/ssh/kiln"], None);
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(out.contains("authorized_keys"), "implications first: {out}");
    assert!(out.contains("--yes"), "{out}");

    let not_generated = env.kiln(&["secrets", "rotate", "ssh/own", "--yes"], None);
    assert_eq!(not_generated.status.code(), Some(1));
    assert!(text(&not_generated).contains("kiln secrets set ssh/own"));

    let clobber = env.kiln(&["secrets", "set", "generated/ssh/kiln"], Some("x"));
    assert_eq!(clobber.status.code(), Some(1));
    assert!(text(&clobber).contains("kiln secrets rotate generated/ssh/kiln"));
}

#[tokio::test]
async fn a_held_lock_makes_another_process_exit_3_naming_the_holder() {
    let env = Env::new();
    let store = FileStore::new(&env.dirs(), "home");
    let lock = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    let run_id = lock.holder().run_id.clone();

    let held = env.kiln(&["secrets", "rotate", "generated/ssh/kiln", "--yes"], None);
    let out = text(&held);
    assert_eq!(held.status.code(), Some(3), "{out}");
    assert!(out.contains(&format!("is locked by run {run_id}")), "{out}");
    assert!(
        out.contains(&format!("pid {}", std::process::id())),
        "{out}"
    );

    lock.release().await.unwrap();
    ok(&env.kiln(&["secrets", "rotate", "generated/ssh/kiln", "--yes"], None));
}

#[test]
fn a_wrong_identity_or_an_open_one_is_refused() {
    let env = Env::new();
    ok(&env.kiln(&["secrets", "set", "ssh/own"], Some(CANARY)));

    let mode = |mode| {
        std::fs::set_permissions(env.identity(), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(0o644);
    let open = env.kiln(&["secrets", "list"], None);
    assert_eq!(open.status.code(), Some(1));
    assert!(text(&open).contains("chmod 600"), "{}", text(&open));
    mode(0o600);

    let saved = std::fs::read(env.identity()).unwrap();
    std::fs::remove_file(env.identity()).unwrap();
    let missing = env.kiln(&["secrets", "list"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("is missing"), "{}", text(&missing));

    // Another identity (as after `init` on a fresh config dir) must not
    // open, nor silently replace, the existing store.
    let other = tempfile::tempdir().unwrap();
    let fresh = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("-i")
        .arg(&env.inventory)
        .args(["secrets", "init"])
        .env("KILN_STATE_DIR", other.path().join("state"))
        .env("KILN_CONFIG_DIR", env.dirs().config)
        .output()
        .unwrap();
    ok(&fresh);
    let wrong = env.kiln(&["secrets", "list"], None);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong).contains("cannot decrypt"), "{}", text(&wrong));

    std::fs::write(env.identity(), saved).unwrap();
    mode(0o600);
    let back = ok(&env.kiln(&["secrets", "list"], None));
    assert!(back.contains("ssh/own"));
}
