//! Custom checks from the config: a program that passes with exit status 0, in time.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::task::JoinSet;

use crate::config::CommandCheck;
use crate::report::{Check, Status};

use super::{check, first_line};

/// Runs all commands at once, so one slow command does not delay the others.
pub(super) async fn checks(commands: &[CommandCheck]) -> Vec<Check> {
    let mut running = JoinSet::new();
    for (index, command) in commands.iter().cloned().enumerate() {
        running.spawn(async move { (index, run(&command).await) });
    }
    let mut done: Vec<(usize, Check)> = Vec::with_capacity(commands.len());
    while let Some(joined) = running.join_next().await {
        if let Ok(result) = joined {
            done.push(result);
        }
    }
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, check)| check).collect()
}

async fn run(command: &CommandCheck) -> Check {
    let name = format!("command.{}", command.name);
    let Some((program, args)) = command.run.split_first() else {
        return check(name, Status::Fail, "no program to run");
    };
    let timeout = Duration::from_secs(u64::from(command.timeout_secs));
    // Its own process group, so a timeout kills what the command started too (`sh -c`);
    // kill_on_drop covers the command itself when the future is dropped.
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(error) => return check(name, Status::Fail, format!("cannot run {program}: {error}")),
    };
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            if let Some(group) = group {
                // The group may be gone already; nothing is left to stop then.
                let _ = killpg(group, Signal::SIGKILL);
            }
            check(
                name,
                Status::Fail,
                format!("{program} timed out after {} s", command.timeout_secs),
            )
        }
        Ok(Err(error)) => check(name, Status::Fail, format!("{program}: {error}")),
        Ok(Ok(output)) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                check(
                    name,
                    Status::Ok,
                    with_output("exit 0", &first_line(&stdout)),
                )
            } else {
                let said = first_line(&stderr);
                let said = if said.is_empty() {
                    first_line(&stdout)
                } else {
                    said
                };
                check(
                    name,
                    Status::Fail,
                    with_output(&output.status.to_string(), &said),
                )
            }
        }
    }
}

fn with_output(status: &str, said: &str) -> String {
    if said.is_empty() {
        status.to_owned()
    } else {
        format!("{status}: {said}")
    }
}
