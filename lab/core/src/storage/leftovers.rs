//! After the process that ran the servers died without stopping them (SIGKILL, a crash), a
//! `kiln-lab down` finds them by the pid files in their state directories and kills them:
//! deleting a network namespace does not stop the processes inside it.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::tgt::TGTD_PID;
use super::tgt_control;

/// How long a killed server may take to go away.
const GONE_WAIT: Duration = Duration::from_secs(5);

/// The pid files a server's state directory may hold, and the program each pid must still be
/// (a pid reused by another program is left alone).
const PID_FILES: [(&str, &str); 3] = [
    (TGTD_PID, "tgtd"),
    ("ganesha.pid", "ganesha.nfsd"),
    ("rpcbind.pid", "rpcbind"),
];

/// Kills (SIGKILL) the tgtd, ganesha and rpcbind recorded in `state_dir`, removes their pid
/// files and tgtd's control socket; the pids it killed. Safe to repeat.
pub fn stop_leftovers(state_dir: &Path) -> Vec<u32> {
    let mut killed = Vec::new();
    for (file, program) in PID_FILES {
        let pid_file = state_dir.join(file);
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(arguments) = running(pid, program) {
            let _ = kill(
                Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
                Signal::SIGKILL,
            );
            wait_gone(pid);
            killed.push(pid);
            if program == "tgtd"
                && let Some(port) = control_port(&arguments)
            {
                tgt_control::remove_files(port);
            }
        }
        let _ = std::fs::remove_file(&pid_file);
    }
    killed
}

/// The arguments of `pid` if it is alive and runs `program`.
fn running(pid: u32, program: &str) -> Option<Vec<String>> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let arguments: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    let name = arguments.first()?.rsplit('/').next()?.to_string();
    (name == program).then_some(arguments)
}

/// tgtd's `-C <port>`.
fn control_port(arguments: &[String]) -> Option<u16> {
    let at = arguments.iter().position(|a| a == "-C")?;
    arguments.get(at + 1)?.parse().ok()
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + GONE_WAIT;
    while Instant::now() < deadline {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie_or_gone = state
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
        if zombie_or_gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgtds_control_port_is_read_from_its_arguments() {
        let arguments: Vec<String> = [
            "tgtd",
            "-f",
            "-C",
            "4711",
            "--iscsi",
            "portal=10.0.0.1:3260",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(control_port(&arguments), Some(4711));
        assert_eq!(control_port(&arguments[..2]), None);
    }

    #[test]
    fn an_empty_directory_has_nothing_to_stop() {
        assert!(stop_leftovers(Path::new("/nonexistent/kiln-storage")).is_empty());
    }
}
