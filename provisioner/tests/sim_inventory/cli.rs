//! Running the `kiln` binary against a sim lab, as a user would: the lab's
//! endpoint, pin and token from the environment, state and config dirs of
//! the test's own.

use std::path::Path;

use kiln_lab::RunningLab;

/// What one `kiln` run printed and how it exited.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for an assertion's message.
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Writes lab.yaml for the sim (without `ssh` and `agent`), with `edit`
/// applied, as `dir/name`.
pub fn write_lab_inventory(
    dir: &Path,
    name: &str,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, edit(super::lab_yaml())).expect("write inventory");
    path
}

/// The command `kiln ARGS -i INVENTORY` against `lab`, with state and
/// config under `dir`.
pub fn command(
    lab: &RunningLab,
    dir: &Path,
    inventory: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kiln"));
    command
        .args(args)
        .arg("-i")
        .arg(inventory)
        .env("KILN_PROXMOX_ENDPOINT", &lab.endpoint)
        .env("KILN_PROXMOX_FINGERPRINT", &lab.fingerprint)
        .env("KILN_PROXMOX_TOKEN", lab.token())
        .env("KILN_STATE_DIR", dir.join("state"))
        .env("KILN_CONFIG_DIR", dir.join("config"))
        .env("NO_COLOR", "1");
    command
}

/// Runs [`command`] with `extra` environment variables to its end.
pub async fn kiln(
    lab: &RunningLab,
    dir: &Path,
    inventory: &Path,
    args: &[&str],
    extra: &[(&str, &Path)],
) -> Run {
    let mut command = command(lab, dir, inventory, args);
    for (name, value) in extra {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("kiln runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
