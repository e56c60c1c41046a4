//! iSCSI sessions (sysfs), NFS mounts and the mounts the config expects (`/proc/mounts`).

use crate::config::AgentConfig;
use crate::report::{Check, Status};

use super::{Host, check, mounts, read_trimmed};

const NFS_TYPES: &[&str] = &["nfs", "nfs4"];

pub(super) fn checks(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let mut checks = vec![iscsi(host)];
    match mounts::read(host) {
        Ok(mounts) => {
            checks.push(nfs(&mounts));
            checks.extend(expected(config, &mounts));
        }
        Err(reason) => checks.push(check("storage.mounts", Status::Fail, reason)),
    }
    checks
}

/// Every session the iSCSI initiator holds must be logged in.
fn iscsi(host: &Host) -> Check {
    let class = host.sys.join("class/iscsi_session");
    let Ok(entries) = std::fs::read_dir(&class) else {
        return check("storage.iscsi", Status::Ok, "no iSCSI sessions");
    };
    let mut sessions: Vec<(String, String, String)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let target = read_trimmed(&dir.join("targetname")).unwrap_or_else(|_| "?".into());
            let state = read_trimmed(&dir.join("state")).unwrap_or_else(|_| "UNKNOWN".into());
            (name, target, state)
        })
        .collect();
    if sessions.is_empty() {
        return check("storage.iscsi", Status::Ok, "no iSCSI sessions");
    }
    sessions.sort();
    let broken: Vec<String> = sessions
        .iter()
        .filter(|(_, _, state)| state != "LOGGED_IN")
        .map(|(name, target, state)| format!("{name} {target} is {state}"))
        .collect();
    if broken.is_empty() {
        let targets: Vec<&str> = sessions
            .iter()
            .map(|(_, target, _)| target.as_str())
            .collect();
        check(
            "storage.iscsi",
            Status::Ok,
            format!("{} logged in: {}", sessions.len(), targets.join(", ")),
        )
    } else {
        check("storage.iscsi", Status::Fail, broken.join("; "))
    }
}

fn nfs(mounts: &[mounts::Mount]) -> Check {
    let shares: Vec<String> = mounts
        .iter()
        .filter(|mount| NFS_TYPES.contains(&mount.fstype.as_str()))
        .map(|mount| format!("{} on {}", mount.source, mount.point.display()))
        .collect();
    let detail = if shares.is_empty() {
        "no NFS mounts".to_owned()
    } else {
        shares.join(", ")
    };
    check("storage.nfs", Status::Ok, detail)
}

fn expected(config: &AgentConfig, mounts: &[mounts::Mount]) -> Vec<Check> {
    config
        .mounts
        .iter()
        .map(|wanted| {
            let name = format!("storage.mount.{}", wanted.display());
            // The last entry wins: a later mount on the same point hides the earlier one.
            match mounts.iter().rev().find(|mount| mount.point == *wanted) {
                Some(mount) => check(
                    name,
                    Status::Ok,
                    format!("{} ({})", mount.source, mount.fstype),
                ),
                None => check(
                    name,
                    Status::Fail,
                    format!("{} is not mounted", wanted.display()),
                ),
            }
        })
        .collect()
}
