//! Running commands the way a person would want to watch them: each is
//! printed before it runs, and a failure names the command.

use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, bail};

/// Runs a command with inherited output; fails unless it exits 0.
pub fn run(program: &str, args: &[&str], envs: &[(&str, &OsStr)]) -> anyhow::Result<()> {
    println!("$ {program} {}", args.join(" "));
    let status = command(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// What a command printed, once it exited.
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command, printed first as `run` does, and keeps both outputs for
/// the caller to read (a JSON answer, an error message to name the cause).
pub fn run_captured(
    program: &str,
    args: &[&str],
    envs: &[(&str, &OsStr)],
) -> anyhow::Result<Captured> {
    println!("$ {program} {}", args.join(" "));
    let output = command(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{program}`"))?;
    Ok(Captured {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Whether a command runs and exits 0, with all output discarded.
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `program`, without the variables `cargo run` set for xtask itself.
///
/// `cargo xtask` is `cargo run -p xtask`, so xtask's environment holds
/// `CARGO_MANIFEST_DIR=…/xtask` and the other per-package variables. A cargo
/// started from here would see them too, and ring's build script reruns
/// whenever `CARGO_MANIFEST_DIR` differs from the build before: ring, rustls
/// and every kiln crate above them were rebuilt (80 s in the demo right after
/// a `cargo build`), and the next plain `cargo build` rebuilt them back.
fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    for name in set_by_cargo_run(std::env::vars_os().map(|(name, _)| name)) {
        command.env_remove(name);
    }
    command
}

/// The names among `names` that `cargo run` sets for the package it runs.
fn set_by_cargo_run(names: impl Iterator<Item = OsString>) -> Vec<OsString> {
    const PREFIXES: &[&str] = &["CARGO_MANIFEST_", "CARGO_PKG_"];
    const NAMES: &[&str] = &[
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
    ];
    names
        .filter(|name| {
            name.to_str().is_some_and(|name| {
                NAMES.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_per_package_variables_of_cargo_run_are_dropped() {
        let names = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_PKG_NAME",
            "CARGO_BIN_NAME",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "PATH",
            "KILN_PYTHON",
        ]
        .map(OsString::from);
        let dropped = set_by_cargo_run(names.into_iter());
        assert_eq!(
            dropped,
            [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_PKG_NAME",
                "CARGO_BIN_NAME"
            ]
            .map(OsString::from)
        );
    }
}
