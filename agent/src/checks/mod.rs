//! The checks one report carries, one file per family. Each reads the host through a
//! [`Host`], whose roots tests point at fixture trees.

mod commands;
mod identity;
mod mounts;
mod network;
mod storage;
mod system;
mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AgentConfig, Thresholds};
use crate::report::{Check, Status};

pub use system::{DiskUsage, FsStats, Statvfs};

/// Where the checks look: the filesystem roots and the programs they run.
#[derive(Clone)]
pub struct Host {
    /// `/proc`
    pub proc: PathBuf,
    /// `/sys`
    pub sys: PathBuf,
    /// `/etc` (for `machine-id`)
    pub etc: PathBuf,
    /// `/run` (for systemd-timesyncd's `synchronized` flag)
    pub run: PathBuf,
    pub systemctl: PathBuf,
    pub timedatectl: PathBuf,
    /// Disk use of a mount point (statvfs on a real host).
    pub fs_stats: Arc<dyn FsStats>,
}

impl Host {
    /// The machine the agent runs on.
    pub fn real() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            etc: PathBuf::from("/etc"),
            run: PathBuf::from("/run"),
            systemctl: PathBuf::from("systemctl"),
            timedatectl: PathBuf::from("timedatectl"),
            fs_stats: Arc::new(Statvfs),
        }
    }
}

/// How long a helper program (`systemctl`, `timedatectl`) may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check family; the slow ones (processes, network) run at the same time.
pub async fn run_all(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let mut checks = identity::checks(config, host);
    let (system, units, network, commands) = tokio::join!(
        system::checks(config, host),
        units::checks(&config.units, host),
        network::checks(config, host),
        commands::checks(&config.commands),
    );
    checks.extend(system);
    checks.extend(units);
    checks.extend(network);
    checks.extend(storage::checks(config, host));
    checks.extend(commands);
    checks
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
    }
}

/// The status of a use percentage against warn/fail thresholds.
fn grade(percent_used: f64, thresholds: Thresholds) -> Status {
    if percent_used >= f64::from(thresholds.fail_percent) {
        Status::Fail
    } else if percent_used >= f64::from(thresholds.warn_percent) {
        Status::Warn
    } else {
        Status::Ok
    }
}

fn read_trimmed(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// The first line of a program's output, cut to a length fit for a one-line detail.
fn first_line(text: &str) -> String {
    const MAX: usize = 200;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}
