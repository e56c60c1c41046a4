//! The `kiln-agent` binary: a bad config names the file and the place, `check` prints a
//! snapshot in either form, `--version` answers.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_kiln-agent");
const PIN: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_bad_config_exits_non_zero_naming_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "{\n  \"node\": \"cp1\",\n  \"clustr\": \"home\"\n}\n");
    let output = Command::new(AGENT)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("clustr") && stderr.contains("line 3 column"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_is_named() {
    let output = Command::new(AGENT)
        .args(["check", "--config", "/nonexistent/kiln-agent.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/kiln-agent.json"), "{stderr}");
}

#[test]
fn check_prints_one_report_as_json_and_text_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    // The collector address is closed on purpose: `check` must not try to send.
    let config = format!(
        r#"{{"node":"cp1","cluster":"home","state_dir":"{}",
            "collector":{{"url":"https://127.0.0.1:9","fingerprint":"{PIN}","token_file":"/nonexistent"}},
            "commands":[{{"name":"fails","run":["false"]}}]}}"#,
        dir.path().join("state").display()
    );
    let path = write_config(&dir, &config);
    let json = Command::new(AGENT)
        .args(["check", "-o", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(2), "a failing check exits 2");
    let report: kiln_agent::report::Report = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((report.node.as_str(), report.sequence), ("cp1", 0));
    assert!(report.checks.iter().any(|c| c.name == "command.fails"));
    assert!(
        !dir.path().join("state").exists(),
        "check touched the state dir"
    );

    let text = Command::new(AGENT)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.starts_with("cp1 in cluster home: fail"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("fail") && l.contains("command.fails")),
        "{stdout}"
    );
}

#[test]
fn version_is_the_crate_version() {
    let output = Command::new(AGENT).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("kiln-agent {}", env!("CARGO_PKG_VERSION"))
    );
}
