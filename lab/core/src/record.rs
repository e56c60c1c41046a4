//! What a qemu lab created, written to its data directory before anything else, so that
//! `kiln-lab down` can remove it all even after `serve` was killed: the namespace, the QEMU
//! processes (their pid files), the credentials file and the data directory itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::netns;
use crate::qemu::MachineFiles;

const RECORD: &str = "lab.json";
/// How long `down` waits for a running `serve` to tear its lab down after SIGTERM.
const SERVE_EXIT_WAIT: Duration = Duration::from_secs(60);
/// How long a killed QEMU may take to go away.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The lab's record file (`<data dir>/lab.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabRecord {
    pub instance: String,
    pub namespace: String,
    /// The `serve` process.
    pub pid: u32,
    pub data_dir: PathBuf,
    pub credentials: Option<PathBuf>,
}

impl LabRecord {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(RECORD)
    }

    pub fn write(&self) -> Result<(), LabError> {
        let path = Self::path(&self.data_dir);
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::Record(format!("{}: {e}", path.display())))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| LabError::Record(format!("cannot write {}: {e}", path.display())))
    }

    pub fn read(data_dir: &Path) -> Result<Self, LabError> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            LabError::Record(format!(
                "cannot read {} (no qemu lab there?): {e}",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| LabError::Record(format!("{} is not a lab record: {e}", path.display())))
    }
}

/// What `down` found and removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub stopped_serve: bool,
    pub killed_qemu: Vec<u32>,
    /// The namespace deleted, if it was still there.
    pub removed_namespace: Option<String>,
}

/// Stops the lab recorded in `data_dir` and removes everything it made. Safe to repeat.
pub fn down(data_dir: &Path) -> Result<DownReport, LabError> {
    let mut record = LabRecord::read(data_dir)?;
    // What is removed is the directory the record was found in, whatever it says.
    record.data_dir = data_dir.to_path_buf();
    let mut report = DownReport::default();
    if record.pid != std::process::id() && is_process(record.pid, "kiln-lab") {
        let _ = kill(pid(record.pid), Signal::SIGTERM);
        if !wait_gone(record.pid, SERVE_EXIT_WAIT) {
            let _ = kill(pid(record.pid), Signal::SIGKILL);
            wait_gone(record.pid, KILL_WAIT);
        }
        report.stopped_serve = true;
    }
    remove_all(&record, &mut report)?;
    Ok(report)
}

/// The teardown `serve` does on SIGINT/SIGTERM, once its guests are stopped.
pub fn teardown(record: &LabRecord) -> Result<DownReport, LabError> {
    let mut report = DownReport::default();
    remove_all(record, &mut report)?;
    Ok(report)
}

fn remove_all(record: &LabRecord, report: &mut DownReport) -> Result<(), LabError> {
    for (pid_file, qemu) in qemu_pids(&record.data_dir) {
        // Only a process started with this pid file: a recycled pid is someone else's.
        if is_process(qemu, &pid_file.display().to_string()) {
            let _ = kill(pid(qemu), Signal::SIGKILL);
            wait_gone(qemu, KILL_WAIT);
            report.killed_qemu.push(qemu);
        }
    }
    if netns::exists(&record.namespace) {
        netns::delete(&record.namespace)?;
        report.removed_namespace = Some(record.namespace.clone());
    }
    if let Some(credentials) = &record.credentials {
        let _ = std::fs::remove_file(credentials);
    }
    match std::fs::remove_dir_all(&record.data_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::Record(format!(
            "cannot remove {}: {e}",
            record.data_dir.display()
        ))),
    }
}

/// Every machine's pid file (QEMU's `-pidfile`) and its pid.
fn qemu_pids(data_dir: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(MachineFiles::all(data_dir)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| MachineFiles { dir: entry.path() }.pid_file())
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            Some((file, text.trim().parse().ok()?))
        })
        .collect()
}

fn pid(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).unwrap_or(i32::MAX))
}

/// Whether `pid` is alive and its command line contains `marker`.
fn is_process(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            let text: String = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(marker) && !is_zombie(pid)
        })
        .unwrap_or(false)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        if !alive {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
