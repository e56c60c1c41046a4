//! A server process inside a network namespace (`ip netns exec`, which execs, so the child's
//! pid is the server's own), and short commands run with a time limit.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::StorageError;

/// How long a server may take to exit after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How much of a server's log an error quotes.
const LOG_TAIL: usize = 2_000;

/// One running server. Dropping it kills the process (SIGKILL), so a failed test or a
/// panicking emulator leaves none behind; `stop` is the orderly way.
pub(super) struct Daemon {
    program: &'static str,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Daemon {
    /// Runs `command` (program and arguments) inside `namespace`, stdout and stderr appended
    /// to `log`; `program` names the server in errors.
    pub(super) fn spawn<S: AsRef<OsStr>>(
        program: &'static str,
        namespace: &str,
        command: &[S],
        log: &Path,
    ) -> Result<Self, StorageError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| StorageError::file(log, e))?;
        let err = out.try_clone().map_err(|e| StorageError::file(log, e))?;
        let child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .args(command)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| StorageError::Spawn {
                program,
                message: format!("`ip netns exec` (iproute2): {e}"),
            })?;
        let pid = child.id().ok_or_else(|| StorageError::Spawn {
            program,
            message: "exited at once".to_string(),
        })?;
        Ok(Self {
            program,
            child,
            pid,
            log: log.to_path_buf(),
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    pub(super) fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the process is still running (not exited, not a zombie waiting for us).
    pub(super) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(super) fn signal(&self, signal: Signal) -> Result<(), StorageError> {
        kill(
            Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX)),
            signal,
        )
        .map_err(|e| StorageError::Spawn {
            program: self.program,
            message: format!("cannot send {signal} to pid {}: {e}", self.pid),
        })
    }

    /// Waits up to `limit` for the process to exit by itself; whether it did.
    pub(super) async fn wait_exit(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }

    /// SIGKILL if still running, then waits (bounded) for it to be gone.
    pub(super) async fn kill(&mut self) {
        if self.running() {
            let _ = self.child.start_kill();
        }
        let _ = self.wait_exit(KILL_WAIT).await;
    }

    /// The end of the log, for error messages.
    pub(super) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim().to_string()
}

/// Runs a short command (not in any namespace of ours: `tgtadm` reaches tgtd over a Unix
/// socket on the shared filesystem); killed if it takes longer than `limit`.
pub(super) async fn run<S: AsRef<OsStr>>(
    program: &'static str,
    args: &[S],
    limit: Duration,
) -> Result<Output, StorageError> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| StorageError::Spawn {
            program,
            message: e.to_string(),
        })?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(StorageError::Spawn {
            program,
            message: e.to_string(),
        }),
        Err(_) => Err(StorageError::Timeout {
            operation: program.to_string(),
            waited: limit,
        }),
    }
}
