//! The collector's commands as a user runs them: `kiln agent token`,
//! `kiln serve` as a process on 127.0.0.1 (its printed URL and fingerprint,
//! graceful stop on SIGTERM) and `kiln status` against it.

#![allow(clippy::unwrap_used)]

#[path = "../../collector/tests/collector_common/mod.rs"]
mod collector_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use collector_common::{check, client, report};
use kiln_agent::report::{REPORTS_PATH, Status};

const INVENTORY: &str = "
cluster: {name: home}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
nodes:
  - {name: node1, role: host, ip: 10.0.0.10, baremetal: {}}
  - {name: node2, role: host, ip: 10.0.0.11, baremetal: {}}
ssh: {user: ops}
agent: {collector: 'https://10.0.0.5:9443'}
";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kiln.yaml"), INVENTORY).unwrap();
        Self { dir }
    }

    fn kiln(&self) -> StdCommand {
        let mut command = StdCommand::cargo_bin("kiln").expect("kiln binary");
        command
            .current_dir(self.dir.path())
            .env("KILN_STATE_DIR", self.dir.path().join("state"))
            .env("KILN_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("KILN_INVENTORY")
            .env_remove("KILN_LOG");
        command
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = self.kiln().args(args).output().expect("run kiln");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// `kiln serve`, killed by pid if the test ends before it stops.
struct Server {
    child: Child,
    url: String,
    fingerprint: kiln_tls::Fingerprint,
}

impl Server {
    fn start(setup: &Setup) -> Self {
        let mut child = setup
            .kiln()
            .args(["serve", "--listen", "127.0.0.1:0", "--history", "10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kiln serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || {
            lines
                .next()
                .expect("kiln serve printed too little")
                .unwrap()
        };
        let listening = next();
        let url = listening
            .strip_prefix("kiln collector listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {listening}"))
            .to_owned();
        let fingerprint_line = next();
        let fingerprint = fingerprint_line
            .strip_prefix("certificate SHA-256 fingerprint: ")
            .unwrap_or_else(|| panic!("unexpected second line: {fingerprint_line}"))
            .parse()
            .unwrap();
        Self {
            child,
            url,
            fingerprint,
        }
    }

    /// SIGTERM, then the exit status (within 20 s).
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kiln serve did not stop within 20 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_token_prints_a_new_token_once_and_refuses_unknown_nodes() {
    let setup = Setup::new();
    let (ok, first, note) = setup.run(&["agent", "token", "node1"]);
    assert!(ok, "{note}");
    let first = first.trim().to_owned();
    assert!(first.starts_with("kiln_at_"), "{first}");
    assert!(
        note.contains("shown once") && !note.contains(&first),
        "{note}"
    );
    let (ok, second, _) = setup.run(&["agent", "token", "node1"]);
    assert!(ok);
    assert_ne!(first, second.trim());
    assert!(
        setup
            .dir
            .path()
            .join("state/collector/collector.db")
            .exists()
    );

    let (ok, out, error) = setup.run(&["agent", "token", "nope"]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(
        error.contains("no node `nope`") && error.contains("kiln.yaml"),
        "{error}"
    );
}

#[tokio::test]
async fn serve_prints_its_address_status_shows_the_nodes_and_sigterm_stops_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let setup = Setup::new();
    let (ok, token, error) = setup.run(&["agent", "token", "node1"]);
    assert!(ok, "{error}");
    let server = Server::start(&setup);
    // The certificate and key live in the cluster's secrets store, encrypted.
    let store = setup.dir.path().join("state/home.secrets.age");
    assert_eq!(permissions(&store), 0o600);
    let sealed = std::fs::read(&store).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"),
        "the key is stored encrypted"
    );

    let failing = report(
        "node1",
        1,
        vec![check("system.disk", Status::Fail, "/ at 99%")],
    );
    let response = client(server.fingerprint)
        .post(format!("{}{REPORTS_PATH}", server.url))
        .bearer_auth(token.trim())
        .json(&failing)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);

    // The pin comes from the cluster's certificate in the secrets store.
    let (ok, json, error) = setup.run(&["status", "-o", "json", "--collector", &server.url]);
    assert!(ok, "{error}");
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["node"], "node1");
    assert_eq!(rows[0]["state"], "failing");
    assert_eq!(rows[0]["ip"], "10.0.0.10");
    assert_eq!(rows[0]["failing_checks"][0], "system.disk (fail): / at 99%");
    assert_eq!(rows[1]["node"], "node2");
    assert_eq!(rows[1]["state"], "no token");

    let (ok, text, error) = setup.run(&["status", "--collector", &server.url]);
    assert!(ok, "{error}");
    assert!(
        text.contains("NODE") && text.contains("FAILING CHECKS"),
        "{text}"
    );
    let line = text.lines().find(|line| line.starts_with("node1")).unwrap();
    assert!(line.contains("failing") && line.contains("s ago"), "{line}");

    let wrong_pin = "00".repeat(32);
    let (ok, _, error) = setup.run(&[
        "status",
        "--collector",
        &server.url,
        "--collector-fingerprint",
        &wrong_pin,
    ]);
    assert!(!ok);
    assert!(error.contains(&server.url), "{error}");

    let server_fingerprint = server.fingerprint;
    let status = server.terminate();
    assert!(status.success(), "kiln serve exited with {status}");
    let again = Server::start(&setup);
    assert_eq!(
        again.fingerprint, server_fingerprint,
        "a restarted collector presents the certificate agents pinned"
    );
}

fn permissions(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn serve_without_an_inventory_or_certificate_says_what_it_needs() {
    let setup = Setup::new();
    std::fs::remove_file(setup.dir.path().join("kiln.yaml")).unwrap();
    let (ok, _, error) = setup.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(
        error.contains("kiln.yaml"),
        "names the missing file: {error}"
    );
    assert!(
        error.contains("pass -i FILE") && error.contains("--cert"),
        "{error}"
    );
}
