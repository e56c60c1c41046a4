//! A server process inside a network namespace (`ip netns exec`, which execs, so the child's
//! pid is the server's own), and short commands run with a time limit. Blocking calls: every
//! operation takes milliseconds, and callers (the emulator's data-path trait) are sync.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::StorageError;

/// How long a server may take to exit after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(10);
/// How much of a server's log an error quotes.
const LOG_TAIL: usize = 2_000;

/// One running server. Dropping it kills the process (SIGKILL) and reaps it, so a failed
/// test or a panicking emulator leaves none behind; the servers' `shutdown` is the orderly way.
pub(super) struct Daemon {
    program: &'static str,
    child: Child,
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
            .spawn()
            .map_err(|e| StorageError::Spawn {
                program,
                message: format!("`ip netns exec` (iproute2): {e}"),
            })?;
        Ok(Self {
            program,
            child,
            log: log.to_path_buf(),
        })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the process is still running (an exited one is reaped here).
    pub(super) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(super) fn signal(&self, signal: Signal) -> Result<(), StorageError> {
        let pid = Pid::from_raw(i32::try_from(self.pid()).unwrap_or(i32::MAX));
        kill(pid, signal).map_err(|e| StorageError::Spawn {
            program: self.program,
            message: format!("cannot send {signal} to pid {pid}: {e}"),
        })
    }

    /// Waits up to `limit` for the process to exit by itself; whether it did.
    pub(super) fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.running() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL if still running, then waits (bounded) for it to be gone.
    pub(super) fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.wait_exit(KILL_WAIT);
    }

    /// The end of the log, for error messages.
    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].trim().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a short command (not in any namespace of ours: `tgtadm` reaches tgtd over a Unix
/// socket on the shared filesystem); killed if it takes longer than `limit`.
pub(super) fn run<S: AsRef<OsStr>>(
    program: &'static str,
    args: &[S],
    limit: Duration,
) -> Result<Output, StorageError> {
    let spawn_error = |e: std::io::Error| StorageError::Spawn {
        program,
        message: e.to_string(),
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    // Read on threads, so that a long listing cannot fill a pipe and stall the command.
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StorageError::Timeout {
                operation: program.to_string(),
                waited: limit,
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
