//! The agent deploy over a real OpenSSH sshd on 127.0.0.1, into a scratch
//! root prefix (`DeployInput::root`): the loopback host's real `/usr/local`
//! and `/etc` are not the test's to change.
//!
//! Not exercised here: the systemd step (`manage_service: false`), since a
//! plain sshd has no systemd of its own to reload; the real-guest tier
//! covers it. Everything else (uploads, checksums, modes, the install record,
//! the unchanged check, the glibc refusal, sudo) is the real thing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

#[path = "../../../clients/ssh/tests/ssh_common/mod.rs"]
mod ssh_common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_agent::config::AgentConfig;
use kiln_agent_deploy::{
    AgentBundle, DeployError, DeployInput, DeployOutcome, GlibcProblem, Installed, deploy,
};
use kiln_ssh::{Privilege, Session};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use ssh_common::login::Fixture as Login;

const TOKEN: &str = "kiln-agent-token-for-tests-0123456789abcdef";

/// A logged-in client and a scratch root to deploy into.
struct Fixture {
    login: Login,
    root: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Option<Self> {
        let login = Login::start()?;
        let root = tempfile::tempdir().unwrap();
        Some(Self { login, root })
    }

    async fn connect(&self) -> Session {
        self.login.connect().await
    }

    fn input(&self, config: AgentConfig) -> DeployInput {
        let mut input = DeployInput::new(config, SecretString::from(TOKEN), unit());
        input.root = self.root.path().to_str().unwrap().to_owned();
        input.manage_service = false;
        input
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.root.path().join(absolute.trim_start_matches('/'))
    }
}

/// The agent engineer's unit, as shipped.
fn unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/kiln-agent.service"),
    )
    .unwrap()
}

fn config(interval: u32) -> AgentConfig {
    serde_json::from_value(serde_json::json!({
        "node": "test-node",
        "cluster": "lab",
        "collector": {
            "url": "https://10.0.0.2:8443",
            "fingerprint": "AB:CD",
            "token_file": "/etc/kiln-agent/token"
        },
        "interval_secs": interval,
    }))
    .unwrap()
}

/// A real dynamically linked ELF binary that needs only the host's glibc.
fn host_binary(dir: &Path) -> AgentBundle {
    let path = dir.join("kiln-agent");
    std::fs::copy("/usr/bin/true", &path).unwrap();
    AgentBundle::load(&path).unwrap()
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn a_first_deploy_installs_everything_and_a_second_changes_nothing() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let bundle = host_binary(scratch.path());
    let session = fixture.connect().await;
    let input = fixture.input(config(15));

    let outcome = deploy(&session, &bundle, &input).await.unwrap();
    assert_eq!(outcome, DeployOutcome::Installed);

    let binary = fixture.path("/usr/local/bin/kiln-agent");
    assert_eq!(sha256(&binary), bundle.sha256());
    assert_eq!(mode(&binary), 0o755);
    let config_file = fixture.path("/etc/kiln-agent/config.json");
    let written: AgentConfig =
        serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    assert_eq!(written, config(15));
    assert_eq!(mode(&config_file), 0o644);
    let token = fixture.path("/etc/kiln-agent/token");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), TOKEN);
    assert_eq!(mode(&token), 0o600);
    let unit_file = fixture.path("/etc/systemd/system/kiln-agent.service");
    assert_eq!(std::fs::read_to_string(&unit_file).unwrap(), unit());
    assert_eq!(mode(&unit_file), 0o644);
    let manifest = fixture.path("/etc/kiln-agent/installed.json");
    let installed: Installed = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(mode(&manifest), 0o600);
    assert_eq!(installed.binary_sha256, bundle.sha256());
    assert_eq!(installed.config_sha256, sha256(&config_file));
    assert_eq!(installed.unit_sha256, sha256(&unit_file));
    assert_eq!(installed.token_sha256, sha256(&token));
    assert_eq!(installed.version, env!("CARGO_PKG_VERSION"));
    let record = std::fs::read_to_string(&manifest).unwrap();
    assert!(!record.contains(TOKEN), "the record holds no token");

    let before = std::fs::metadata(&binary).unwrap().modified().unwrap();
    let again = deploy(&session, &bundle, &input).await.unwrap();
    assert_eq!(again, DeployOutcome::Unchanged);
    assert_eq!(
        std::fs::metadata(&binary).unwrap().modified().unwrap(),
        before,
        "nothing rewritten"
    );
    session.close().await;
}

#[tokio::test]
async fn a_changed_config_token_or_damaged_file_reinstalls() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let bundle = host_binary(scratch.path());
    let session = fixture.connect().await;
    let first = fixture.input(config(15));
    assert_eq!(
        deploy(&session, &bundle, &first).await.unwrap(),
        DeployOutcome::Installed
    );

    let changed = fixture.input(config(30));
    assert_eq!(
        deploy(&session, &bundle, &changed).await.unwrap(),
        DeployOutcome::Installed
    );
    let written: AgentConfig = serde_json::from_slice(
        &std::fs::read(fixture.path("/etc/kiln-agent/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written.interval_secs, 30);
    assert_eq!(
        deploy(&session, &bundle, &changed).await.unwrap(),
        DeployOutcome::Unchanged
    );

    let mut rotated = fixture.input(config(30));
    rotated.token = SecretString::from("a-rotated-token");
    assert_eq!(
        deploy(&session, &bundle, &rotated).await.unwrap(),
        DeployOutcome::Installed
    );
    assert_eq!(
        std::fs::read_to_string(fixture.path("/etc/kiln-agent/token")).unwrap(),
        "a-rotated-token"
    );

    let binary = fixture.path("/usr/local/bin/kiln-agent");
    std::fs::write(&binary, b"damaged").unwrap();
    assert_eq!(
        deploy(&session, &bundle, &rotated).await.unwrap(),
        DeployOutcome::Installed,
        "the record alone does not make it unchanged"
    );
    assert_eq!(sha256(&binary), bundle.sha256());
}

#[tokio::test]
async fn a_binary_needing_a_newer_glibc_is_refused_naming_both_versions() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let bundle = AgentBundle::load(&future_glibc_binary(scratch.path())).unwrap();
    assert_eq!(bundle.glibc().unwrap().to_string(), "2.99");
    let session = fixture.connect().await;

    let error = deploy(&session, &bundle, &fixture.input(config(15)))
        .await
        .unwrap_err();
    let host = getconf_glibc();
    let DeployError::Glibc { problem, .. } = &error else {
        panic!("{error}");
    };
    assert!(
        matches!(problem, GlibcProblem::TooOld { needed, found }
            if needed.to_string() == "2.99" && found.to_string() == host),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains("needs glibc 2.99"), "{text}");
    assert!(
        text.contains(&format!("the host has glibc {host}")),
        "{text}"
    );
    assert!(text.contains("(node test-node)"), "{text}");
    assert!(
        !fixture.path("/usr/local/bin").exists(),
        "nothing was written before the refusal"
    );
}

#[tokio::test]
async fn through_sudo_the_files_are_root_owned_and_a_rerun_is_unchanged() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    if !Path::new("/usr/bin/sudo").exists() {
        eprintln!("sudo missing (Debian sudo; `cargo xtask setup`): skipping");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let bundle = host_binary(scratch.path());
    let session = fixture.connect().await;
    let mut input = fixture.input(config(15));
    input.privilege = Some(Privilege::Sudo);
    assert_eq!(
        deploy(&session, &bundle, &input).await.unwrap(),
        DeployOutcome::Installed
    );
    let token = fixture.path("/etc/kiln-agent/token");
    assert_eq!(std::fs::metadata(&token).unwrap().uid(), 0);
    assert_eq!(mode(&token), 0o600);
    assert_eq!(
        sha256(&fixture.path("/usr/local/bin/kiln-agent")),
        bundle.sha256()
    );
    assert_eq!(
        deploy(&session, &bundle, &input).await.unwrap(),
        DeployOutcome::Unchanged
    );
}

fn getconf_glibc() -> String {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .strip_prefix("glibc ")
        .unwrap()
        .to_owned()
}

/// A real ELF executable whose `.gnu.version_r` asks for `GLIBC_2.99`,
/// built with gcc against a stand-in library that defines that version (as
/// libc, libm and libpthread do; a second `libc.so.6` soname would clash
/// with the real one at link time).
fn future_glibc_binary(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("future.c"),
        "int kiln_future(void) { return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("future.map"),
        "GLIBC_2.99 { global: kiln_future; local: *; };\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.c"),
        "int kiln_future(void);\nint main(void) { return kiln_future(); }\n",
    )
    .unwrap();
    let gcc = |args: &[&str]| {
        let status = Command::new("gcc")
            .current_dir(dir)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "gcc {args:?}");
    };
    gcc(&[
        "-shared",
        "-fPIC",
        "-Wl,-soname,libfuture.so",
        "-Wl,--version-script=future.map",
        "future.c",
        "-o",
        "libfuture.so",
    ]);
    gcc(&["main.c", "-L.", "-lfuture", "-o", "kiln-agent"]);
    dir.join("kiln-agent")
}
