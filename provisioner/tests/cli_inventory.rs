//! `kiln validate`, `kiln schema` and `kiln completions` as a user runs them.

use std::path::PathBuf;

use assert_cmd::Command;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../inventory/examples")
        .join(name)
}

fn kiln() -> Command {
    let mut command = Command::cargo_bin("kiln").expect("kiln binary");
    command.env_remove("KILN_INVENTORY").env("NO_COLOR", "1");
    command
}

fn write_inventory(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), text).expect("write");
    file
}

const BROKEN: &str = "\
cluster:
  name: lab
  colour: blue
proxmox:
  endpoint: https://pve1:8006
  auth:
    token: canary-token-value-0123
  nodes: [pve1]
network:
  ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}
nodes:
  - {name: a, role: host, ip: 10.0.0.11, memory: 2GB}
";

#[test]
fn a_valid_inventory_exits_0_and_says_so() {
    let output = kiln()
        .arg("validate")
        .arg("-i")
        .arg(example("lab.yaml"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("valid — cluster `lab` (none), 3 VMs and 0 bare-metal nodes"),
        "{stdout}"
    );
}

#[test]
fn the_inventory_comes_from_kiln_inventory_when_not_given() {
    let output = kiln()
        .arg("validate")
        .env("KILN_INVENTORY", example("homelab-k3s.yaml"))
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_invalid_inventory_exits_1_with_every_error_located() {
    let file = write_inventory(BROKEN);
    let output = kiln()
        .arg("validate")
        .arg("-i")
        .arg(file.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = file.path().display().to_string();
    for expected in [
        format!("{path}:3:3: unknown field `colour`"),
        format!("{path}:7:12: this field holds a secret"),
        format!("{path}:12:50: invalid size `2GB`"),
        format!("{path}: 3 errors found"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("│     token: ***"),
        "the snippet masks the secret:\n{stderr}"
    );
    assert!(
        !stderr.contains("canary-token-value"),
        "a literal secret leaked:\n{stderr}"
    );
}

#[test]
fn json_output_lists_errors_with_positions_and_no_secret() {
    let file = write_inventory(BROKEN);
    let output = kiln()
        .args(["validate", "-o", "json", "-i"])
        .arg(file.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], false);
    let errors = report["errors"].as_array().expect("errors");
    let positions: Vec<(u64, u64)> = errors
        .iter()
        .map(|error| {
            (
                error["line"].as_u64().unwrap(),
                error["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(positions, [(3, 3), (7, 12), (12, 50)]);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("canary-token-value"));
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let output = kiln()
        .args(["validate", "-i", "/nonexistent/kiln.yaml"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/kiln.yaml:1:1: cannot read the inventory"),
        "{stderr}"
    );
}

#[test]
fn schema_prints_the_committed_schema() {
    let output = kiln().arg("schema").output().expect("run");
    assert_eq!(output.status.code(), Some(0));
    let committed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/kiln.schema.json"),
    )
    .expect("docs/kiln.schema.json");
    assert_eq!(String::from_utf8_lossy(&output.stdout), committed);
}

#[test]
fn completions_name_the_commands() {
    let output = kiln().args(["completions", "bash"]).output().expect("run");
    assert_eq!(output.status.code(), Some(0));
    let script = String::from_utf8_lossy(&output.stdout);
    assert!(
        script.contains("validate") && script.contains("schema"),
        "{script}"
    );
}

#[test]
fn json_logs_are_json_lines_on_stderr() {
    let output = kiln()
        .args([
            "validate",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "-i",
        ])
        .arg(example("minimal.yaml"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("validating"), "no debug log line: {stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
}

#[test]
fn an_invalid_log_level_is_refused() {
    let output = kiln()
        .args(["validate", "--log-level", "loud=="])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid --log-level"));
}
