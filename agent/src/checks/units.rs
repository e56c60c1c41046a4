//! The configured systemd units must be active. One `systemctl show` reads all of them.

use std::collections::HashMap;
use std::process::Stdio;

use crate::report::{Check, Status};

use super::{HELPER_TIMEOUT, Host, check, first_line};

pub(super) async fn checks(units: &[String], host: &Host) -> Vec<Check> {
    if units.is_empty() {
        return Vec::new();
    }
    match show(units, host).await {
        Ok(text) => from_show_output(units, &text),
        Err(reason) => units
            .iter()
            .map(|unit| check(check_name(unit), Status::Fail, reason.clone()))
            .collect(),
    }
}

async fn show(units: &[String], host: &Host) -> Result<String, String> {
    let program = host.systemctl.display();
    let output = tokio::time::timeout(
        HELPER_TIMEOUT,
        tokio::process::Command::new(&host.systemctl)
            .args([
                "show",
                "-p",
                "LoadState",
                "-p",
                "ActiveState",
                "-p",
                "SubState",
                "--",
            ])
            .args(units)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        format!(
            "{program} show timed out after {} s",
            HELPER_TIMEOUT.as_secs()
        )
    })?
    .map_err(|error| format!("cannot run {program}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} show {}: {}",
            output.status,
            first_line(&String::from_utf8_lossy(&output.stderr))
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `systemctl show` prints one block of `Key=value` lines per unit, in argument order,
/// separated by blank lines.
fn from_show_output(units: &[String], text: &str) -> Vec<Check> {
    let blocks: Vec<HashMap<&str, &str>> = text
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter_map(|line| line.split_once('='))
                .collect()
        })
        .filter(|block: &HashMap<&str, &str>| !block.is_empty())
        .collect();
    units
        .iter()
        .enumerate()
        .map(|(index, unit)| match blocks.get(index) {
            Some(block) => grade_unit(unit, block),
            None => check(
                check_name(unit),
                Status::Fail,
                "systemctl show said nothing about it",
            ),
        })
        .collect()
}

fn grade_unit(unit: &str, block: &HashMap<&str, &str>) -> Check {
    let load = block.get("LoadState").copied().unwrap_or("unknown");
    let active = block.get("ActiveState").copied().unwrap_or("unknown");
    let sub = block.get("SubState").copied().unwrap_or("unknown");
    if load == "not-found" {
        return check(check_name(unit), Status::Fail, format!("{unit} not found"));
    }
    let status = match active {
        "active" => Status::Ok,
        "activating" | "reloading" | "refreshing" => Status::Warn,
        _ => Status::Fail,
    };
    check(check_name(unit), status, format!("{unit} {active} ({sub})"))
}

/// `unit.sshd` for `sshd.service`; other unit types keep their suffix (`unit.data.mount`).
fn check_name(unit: &str) -> String {
    format!("unit.{}", unit.strip_suffix(".service").unwrap_or(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "LoadState=loaded\nActiveState=active\nSubState=running\n\n\
                        ActiveState=inactive\nSubState=dead\nLoadState=loaded\n\n\
                        LoadState=not-found\nActiveState=inactive\nSubState=dead\n";

    #[test]
    fn grades_each_unit_by_its_block() {
        let units = ["sshd.service", "qemu-guest-agent.service", "k3s.service"].map(String::from);
        let checks = from_show_output(&units, SHOW);
        let summary: Vec<_> = checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            summary,
            [
                ("unit.sshd", Status::Ok),
                ("unit.qemu-guest-agent", Status::Fail),
                ("unit.k3s", Status::Fail),
            ]
        );
        assert_eq!(checks[1].detail, "qemu-guest-agent.service inactive (dead)");
        assert_eq!(checks[2].detail, "k3s.service not found");
    }

    #[test]
    fn a_missing_block_fails_rather_than_passing() {
        let units = ["a.service", "b.service"].map(String::from);
        let checks = from_show_output(
            &units,
            "LoadState=loaded\nActiveState=active\nSubState=running\n",
        );
        assert_eq!(checks[1].status, Status::Fail);
    }
}
