//! The full gate: set-up, then fmt, clippy, nextest and doctests.

use std::ffi::OsString;

use crate::command::run;
use crate::setup;

pub fn run_all(nextest_args: &[String]) -> anyhow::Result<()> {
    let tools = setup::ensure_all()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut search = vec![tools.venv_bin.clone()];
    search.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(search)?;
    let python: OsString = tools.venv_bin.join("python3").into_os_string();
    let bao: OsString = tools.venv_bin.join("bao").into_os_string();
    let env = [
        ("PATH", path.as_os_str()),
        ("KILN_PYTHON", python.as_os_str()),
        ("KILN_BAO", bao.as_os_str()),
    ];
    run("cargo", &["fmt", "--all", "--", "--check"], &env)?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &env,
    )?;
    // The real-guest tests upload kiln-agent into TCG guests: the release
    // build is a fifth of the debug one's size.
    run("cargo", &["build", "--release", "-p", "kiln-agent"], &env)?;
    let mut nextest = vec!["nextest", "run", "--workspace", "--profile", "ci"];
    nextest.extend(nextest_args.iter().map(String::as_str));
    run("cargo", &nextest, &env)?;
    run("cargo", &["test", "--doc", "--workspace"], &env)?;
    println!("xtask: all checks passed");
    Ok(())
}
