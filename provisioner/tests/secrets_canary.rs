//! The canary test of the secrets issue: a full `kiln apply` on the sim lab
//! (a PVE emulator held to the official schema) at `--log-level trace` with
//! `-o json`, every secret it handles set to a canary string. No canary, and
//! not the generated SSH private key, may appear in stdout, stderr, the
//! lab's request log, or any file in the state dir other than the encrypted
//! store (the journal included). The same holds for TrueNAS's API key and
//! the CHAP secret kiln generates, through `kiln plan` on the TrueNAS
//! emulator.

// Test helpers set up fixtures: a failed setup should stop the test.
#![allow(clippy::unwrap_used)]

#[path = "../../clients/proxmox/tests/proxmox_common/mod.rs"]
mod proxmox_common;
#[path = "../../clients/secrets/tests/secrets_bao/mod.rs"]
mod secrets_bao;
mod sim_inventory;

use std::path::{Path, PathBuf};

use kiln::secrets::ClusterSecrets;
use kiln_lab::{LabConfig, RunningLab};
use kiln_secrets::file::single_value;
use kiln_secrets::{Cas, Dirs, FileStore, SecretStore};
use reqwest::Method;
use secrecy::ExposeSecret;
use secrets_bao::Bao;
use serde_json::json;

/// The PVE API token's secret: the lab accepts exactly this.
const PVE_CANARY: &str = "kiln-canary-pve-7c41d0e2";

struct Fixture {
    lab: RunningLab,
    root: tempfile::TempDir,
    request_log: PathBuf,
}

impl Fixture {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let request_log = root.path().join("requests.jsonl");
        let lab = proxmox_common::start_lab(LabConfig {
            token_secret: Some(PVE_CANARY.to_owned()),
            request_log: Some(request_log.clone()),
            ..LabConfig::default()
        })
        .await;
        lab.add_template("pve2", 9001, "debian-12-kiln").unwrap();
        Self {
            lab,
            root,
            request_log,
        }
    }

    fn dirs(&self) -> Dirs {
        Dirs {
            state: self.root.path().join("state"),
            config: self.root.path().join("config"),
        }
    }

    /// lab.yaml with the PVE token read through `token_ref` and `extra`
    /// appended.
    fn inventory(&self, token_ref: &str, extra: &str) -> PathBuf {
        let text = sim_inventory::lab_yaml();
        let text = text.replace(
            "token: env:KILN_PROXMOX_TOKEN",
            &format!("token: '{token_ref}'"),
        );
        assert!(text.contains(token_ref), "lab.yaml changed shape");
        let path = self.root.path().join("kiln.yaml");
        std::fs::write(&path, format!("{text}{extra}")).unwrap();
        path
    }

    /// `kiln secrets rotate generated/ssh/kiln` (which makes the cluster's
    /// SSH key: the sim lab's apply logs in nowhere, so it makes none) and
    /// `kiln apply`, both at trace level; returns their stdout + stderr.
    async fn apply(&self, inventory: &Path) -> String {
        let rotated = self
            .kiln(inventory, &["secrets", "rotate", "generated/ssh/kiln"])
            .await;
        let applied = self.kiln(inventory, &["apply"]).await;
        format!("{rotated}\n{applied}")
    }

    /// `kiln --log-level trace -o json --yes ARGS -i INVENTORY`.
    async fn kiln(&self, inventory: &Path, args: &[&str]) -> String {
        let dirs = self.dirs();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .args(["--log-level", "trace", "-o", "json", "--yes"])
            .args(args)
            .arg("-i")
            .arg(inventory)
            .env("KILN_PROXMOX_ENDPOINT", &self.lab.endpoint)
            .env("KILN_PROXMOX_FINGERPRINT", &self.lab.fingerprint)
            .env("KILN_STATE_DIR", &dirs.state)
            .env("KILN_CONFIG_DIR", &dirs.config)
            .env("NO_COLOR", "1");
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap();
        let printed = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(0), "{printed}");
        printed
    }

    /// Everything that must stay clean, as (where, bytes).
    fn places(&self, printed: &str) -> Vec<(String, Vec<u8>)> {
        let mut places = vec![
            (
                "kiln's stdout and stderr".to_owned(),
                printed.as_bytes().to_vec(),
            ),
            (
                "the lab's request log (memory)".to_owned(),
                serde_json::to_vec(&self.lab.requests()).unwrap(),
            ),
            (
                "the lab's request log (file)".to_owned(),
                std::fs::read(&self.request_log).unwrap(),
            ),
        ];
        for file in files_under(&self.dirs().state) {
            if file.to_string_lossy().ends_with(".secrets.age") {
                continue;
            }
            places.push((file.display().to_string(), std::fs::read(&file).unwrap()));
        }
        places
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn assert_absent(places: &[(String, Vec<u8>)], needles: &[(&str, &str)]) {
    // A positive control: the search does see what those places hold.
    assert!(
        places
            .iter()
            .any(|(_, bytes)| contains(bytes, "PVEAPIToken=kiln@pve!kiln=***")),
        "the masked token is in the request log"
    );
    assert!(
        places
            .iter()
            .any(|(_, bytes)| contains(bytes, "\"step\":\"wait_ip\"")),
        "the JSON events are in the output"
    );
    for (where_, bytes) in places {
        for (what, needle) in needles {
            assert!(!contains(bytes, needle), "{what} appears in {where_}");
        }
    }
}

/// The second line of the private key the apply generated: random key
/// material that only a leak of the key itself could print.
async fn private_key_line(fixture: &Fixture, inventory: &Path) -> String {
    let inventory = kiln_inventory::load(inventory).unwrap();
    let secrets = ClusterSecrets::open(&inventory, &fixture.dirs())
        .await
        .unwrap();
    let entry = secrets
        .store()
        .read("generated/ssh/kiln")
        .await
        .unwrap()
        .expect("the apply generated the cluster's SSH key");
    entry.data["private_key"]
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned()
}

fn sanity(fixture: &Fixture, printed: &str) {
    let requests = fixture.lab.requests();
    assert!(
        requests.iter().any(|request| request.method == "POST"),
        "the apply created VMs"
    );
    assert!(
        requests.iter().any(|request| request
            .auth
            .as_deref()
            .is_some_and(|auth| auth.starts_with("PVEAPIToken=kiln@pve!kiln="))),
        "the request log records (masked) authentication"
    );
    assert!(
        printed.contains(r#""rotated":"generated/ssh/kiln""#),
        "the SSH key was made: {printed}"
    );
    assert!(
        printed.contains("rotated a generated secret"),
        "logging was on (kiln logs rotating the SSH key): {printed}"
    );
    assert!(
        files_under(&fixture.dirs().state)
            .iter()
            .any(|file| file.to_string_lossy().contains("journal.sqlite3")),
        "the run wrote its journal into the state dir, so it is searched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_the_file_store_leaks_no_secret() {
    let fixture = Fixture::new().await;
    FileStore::new(&fixture.dirs(), "lab")
        .write(
            "pve-token",
            single_value(fixture.lab.token().into()),
            Cas::Absent,
        )
        .await
        .unwrap();
    let inventory = fixture.inventory("file:pve-token", "");
    let printed = fixture.apply(&inventory).await;
    sanity(&fixture, &printed);
    let key = private_key_line(&fixture, &inventory).await;
    assert_absent(
        &fixture.places(&printed),
        &[
            ("the PVE token secret", PVE_CANARY),
            ("the generated SSH private key", &key),
            ("a private key", "PRIVATE KEY"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_vault_leaks_no_secret() {
    let fixture = Fixture::new().await;
    let bao = Bao::start().await;
    // The Vault token is a canary too: it is the dev server's root token.
    let vault_canary = secrets_bao::ROOT_TOKEN;
    bao.admin(
        Method::POST,
        "secret/data/kiln/pve",
        Some(json!({ "data": { "token": fixture.lab.token() } })),
    )
    .await;
    FileStore::new(&fixture.dirs(), "lab")
        .write(
            "vault-token",
            single_value(vault_canary.into()),
            Cas::Absent,
        )
        .await
        .unwrap();
    let inventory = fixture.inventory(
        "vault:secret/kiln/pve#token",
        &format!(
            "
secrets:
  backend: vault
  vault:
    address: {}
    auth: {{method: token, token: 'file:vault-token'}}
",
            bao.address
        ),
    );
    let printed = fixture.apply(&inventory).await;
    sanity(&fixture, &printed);
    let key = private_key_line(&fixture, &inventory).await;
    assert_absent(
        &fixture.places(&printed),
        &[
            ("the PVE token secret", PVE_CANARY),
            ("the Vault token", vault_canary),
            ("the generated SSH private key", &key),
            ("a private key", "PRIVATE KEY"),
        ],
    );
    let stored = bao
        .admin(Method::GET, "secret/data/kiln/lab/generated/ssh/kiln", None)
        .await;
    assert!(
        stored["data"]["data"]["private_key"]
            .as_str()
            .is_some_and(|key| key.contains("OPENSSH PRIVATE KEY")),
        "the generated key lives in Vault with the Vault backend"
    );
}

/// `kiln plan` with `storage` on the TrueNAS emulator, CHAP on: the API key
/// logs in and the CHAP secret kiln generates is planned (masked), and
/// neither reaches kiln's output, the NAS's request log or the state dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_truenas_leaks_neither_the_api_key_nor_the_chap_secret() {
    let fixture = Fixture::new().await;
    let nas_log = fixture.root.path().join("truenas.jsonl");
    let nas = kiln_lab::truenas::start(kiln_lab::truenas::TruenasConfig {
        request_log: Some(nas_log.clone()),
        ..kiln_lab::truenas::TruenasConfig::default()
    })
    .await
    .unwrap();
    let store = FileStore::new(&fixture.dirs(), "lab");
    for (name, value) in [
        ("pve-token", fixture.lab.token()),
        ("nas-key", nas.api_key().to_owned()),
    ] {
        store
            .write(name, single_value(value.into()), Cas::Absent)
            .await
            .unwrap();
    }
    let inventory = fixture.inventory(
        "file:pve-token",
        &format!(
            "
storage:
  truenas:
    endpoint: {}
    api_key: file:nas-key
    tls: {{fingerprint: '{}'}}
    iscsi: {{portal: 127.0.0.1:3260, dataset: tank/k8s/iscsi, chap: true}}
    nfs: {{server: 127.0.0.1, dataset: tank/k8s/nfs}}
",
            nas.endpoint, nas.fingerprint
        ),
    );
    let printed = fixture.kiln(&inventory, &["plan"]).await;
    assert!(
        printed.contains("\"storage\"") && printed.contains("CHAP"),
        "the plan lists TrueNAS's changes, CHAP among them: {printed}"
    );
    let chap = {
        let inventory = kiln_inventory::load(&inventory).unwrap();
        let secrets = ClusterSecrets::open(&inventory, &fixture.dirs())
            .await
            .unwrap();
        let entry = secrets
            .store()
            .read("generated/truenas/chap")
            .await
            .unwrap()
            .expect("the plan generated the CHAP secret");
        entry.data["secret"].expose_secret().to_owned()
    };
    assert!(
        nas.calls()
            .iter()
            .any(|call| call.method == "auth.login_ex" || call.method == "auth.login_with_api_key"),
        "kiln logged in to the NAS with the key"
    );
    let mut places = vec![
        ("kiln's stdout and stderr".to_owned(), printed.into_bytes()),
        (
            "the NAS's request log (memory)".to_owned(),
            serde_json::to_vec(&nas.calls()).unwrap(),
        ),
        (
            "the NAS's request log (file)".to_owned(),
            std::fs::read(&nas_log).unwrap(),
        ),
    ];
    for file in files_under(&fixture.dirs().state) {
        if !file.to_string_lossy().ends_with(".secrets.age") {
            places.push((file.display().to_string(), std::fs::read(&file).unwrap()));
        }
    }
    for (where_, bytes) in &places {
        for (what, needle) in [
            ("the TrueNAS API key", nas.api_key()),
            ("the CHAP secret", chap.as_str()),
        ] {
            assert!(!contains(bytes, needle), "{what} appears in {where_}");
        }
    }
    nas.shutdown().await;
}
