//! The unit kiln installs passes `systemd-analyze verify` and keeps its hardening.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use kiln_agent::SYSTEMD_UNIT;

const INSTALLED_BINARY: &str = "/usr/local/bin/kiln-agent";

#[test]
fn the_unit_is_hardened() {
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "ReadWritePaths=/var/lib/kiln-agent",
        "Restart=on-failure",
        &format!("ExecStart={INSTALLED_BINARY} run --config /etc/kiln-agent/config.json"),
    ] {
        assert!(SYSTEMD_UNIT.contains(line), "the unit lacks {line:?}");
    }
}

fn systemd_analyze_present() -> bool {
    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok();
    if !present {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
    }
    present
}

/// `systemd-analyze ARGS UNIT` on a copy of `unit` whose ExecStart is this build's binary
/// (verify checks that it exists): exit success and the output lines about the unit.
fn analyze(args: &[&str], unit: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln-agent.service");
    std::fs::write(
        &path,
        unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_kiln-agent")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// verify exits 0 even for unknown keys and bad values; it names the unit file in a line
/// for each such problem, so those lines are what matters.
fn verify_problems(unit: &str) -> Vec<String> {
    let (success, text) = analyze(&["verify", "--man=no"], unit);
    let mut problems: Vec<String> = text
        .lines()
        .filter(|line| line.contains("kiln-agent.service"))
        .map(str::to_owned)
        .collect();
    if !success {
        problems.push(format!("systemd-analyze verify failed: {text}"));
    }
    problems
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if !systemd_analyze_present() {
        return;
    }
    assert_eq!(verify_problems(SYSTEMD_UNIT), Vec::<String>::new());
}

#[test]
fn systemd_analyze_verify_would_catch_a_broken_unit() {
    if !systemd_analyze_present() {
        return;
    }
    let broken = SYSTEMD_UNIT.replace("ProtectHome=yes", "ProtectHome=maybe\nProtectHme=yes");
    let problems = verify_problems(&broken);
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn the_offline_security_score_stays_low() {
    if !systemd_analyze_present() {
        return;
    }
    let (_, text) = analyze(&["security", "--offline=true", "--no-pager"], SYSTEMD_UNIT);
    let score: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for kiln-agent.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // systemd rates 0-10; below 3 is its "OK" band. Printed so a change shows in the log.
    println!("systemd-analyze security exposure: {score}");
    assert!(score < 3.0, "exposure {score}:\n{text}");
}
