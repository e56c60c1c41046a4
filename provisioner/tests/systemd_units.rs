//! The shipped systemd units pass `systemd-analyze verify` (Debian's
//! systemd), with ExecStart pointed at the kiln binary this build made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const UNITS: [&str; 3] = [
    "kiln-serve.service",
    "kiln-nightly.service",
    "kiln-nightly.timer",
];

#[test]
fn shipped_units_verify() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze (Debian systemd) is needed to verify the units"
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let dir = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(source.join(unit)).unwrap();
        assert!(
            !text.contains("ExecStart") || text.contains("/usr/local/bin/kiln "),
            "{unit}: ExecStart should run /usr/local/bin/kiln"
        );
        let text = text.replace(
            "/usr/local/bin/kiln ",
            &format!("{} ", env!("CARGO_BIN_EXE_kiln")),
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let paths: Vec<_> = UNITS.iter().map(|unit| dir.path().join(unit)).collect();
    let output = Command::new(analyze)
        .arg("verify")
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only complaints about the units themselves count: verify also reports
    // on unrelated units of the machine it runs on.
    let about_ours: Vec<&str> = stderr
        .lines()
        .filter(|line| UNITS.iter().any(|unit| line.contains(unit)))
        .collect();
    assert!(
        output.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

#[test]
fn units_are_hardened() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for unit in ["kiln-serve.service", "kiln-nightly.service"] {
        let text = std::fs::read_to_string(source.join(unit)).unwrap();
        for setting in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
        ] {
            assert!(text.contains(setting), "{unit} lacks {setting:?}");
        }
    }
}
