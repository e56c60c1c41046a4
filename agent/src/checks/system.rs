//! Uptime, load, memory, disk use per mount, kernel, and clock synchronization.

use std::path::Path;
use std::process::Stdio;

use crate::config::AgentConfig;
use crate::report::{Check, Status};

use super::{HELPER_TIMEOUT, Host, check, first_line, grade, mounts, read_trimmed};

/// Local block filesystems whose fill level matters. Network filesystems are left out on
/// purpose: statvfs on an NFS mount whose server is gone blocks, and would stall the agent.
const DISK_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "vfat", "f2fs", "bcachefs", "jfs",
];

/// The size and free space of one filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Space in use.
    pub used: u64,
    /// Space an unprivileged user can still write (excludes root's reserve, as `df` does).
    pub available: u64,
}

impl DiskUsage {
    /// Percent in use the way `df` counts it: used / (used + available).
    pub fn percent_used(&self) -> f64 {
        let usable = self.used.saturating_add(self.available);
        if usable == 0 {
            return 0.0;
        }
        self.used as f64 * 100.0 / usable as f64
    }
}

/// Where disk use comes from: statvfs on a real host, a table in tests.
pub trait FsStats: Send + Sync {
    fn usage(&self, mount_point: &Path) -> Result<DiskUsage, String>;
}

/// statvfs(3) on the mount point.
pub struct Statvfs;

impl FsStats for Statvfs {
    fn usage(&self, mount_point: &Path) -> Result<DiskUsage, String> {
        let stats = nix::sys::statvfs::statvfs(mount_point)
            .map_err(|error| format!("statvfs {}: {error}", mount_point.display()))?;
        let fragment = stats.fragment_size();
        let total = stats.blocks().saturating_mul(fragment);
        let free = stats.blocks_free().saturating_mul(fragment);
        let available = stats.blocks_available().saturating_mul(fragment);
        Ok(DiskUsage {
            used: total.saturating_sub(free),
            available,
        })
    }
}

pub(super) async fn checks(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let mut checks = vec![uptime(host), load(config, host), memory(config, host)];
    checks.extend(disks(config, host));
    checks.push(kernel(host));
    if config.clock_sync {
        checks.push(clock(host).await);
    }
    checks
}

fn uptime(host: &Host) -> Check {
    let seconds = read_trimmed(&host.proc.join("uptime")).and_then(|text| {
        text.split_ascii_whitespace()
            .next()
            .and_then(|field| field.parse::<f64>().ok())
            .ok_or_else(|| format!("unexpected /proc/uptime {text:?}"))
    });
    match seconds {
        Ok(seconds) => check(
            "system.uptime",
            Status::Ok,
            format!("up {}", human_duration(seconds)),
        ),
        Err(reason) => check("system.uptime", Status::Fail, reason),
    }
}

fn human_duration(seconds: f64) -> String {
    let total = seconds as u64;
    let (days, hours, minutes) = (total / 86_400, total % 86_400 / 3600, total % 3600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else {
        format!("{minutes}m {}s", total % 60)
    }
}

/// Load per CPU against `config.load`, counting the lower of the 1- and
/// 5-minute averages: sustained and still there. A host that was busy
/// booting (high 5-minute, low 1-minute) or is in a short spike (the
/// reverse) is fine.
fn load(config: &AgentConfig, host: &Host) -> Check {
    let averages = read_trimmed(&host.proc.join("loadavg")).and_then(|text| {
        let fields: Vec<f64> = text
            .split_ascii_whitespace()
            .take(3)
            .filter_map(|field| field.parse().ok())
            .collect();
        <[f64; 3]>::try_from(fields).map_err(|_| format!("unexpected /proc/loadavg {text:?}"))
    });
    let [one, five, fifteen] = match averages {
        Ok(averages) => averages,
        Err(reason) => return check("system.load", Status::Fail, reason),
    };
    let cpus = cpu_count(host).unwrap_or(1).max(1);
    let per_cpu = one.min(five) / f64::from(cpus);
    let status = if per_cpu >= config.load.fail_per_cpu {
        Status::Fail
    } else if per_cpu >= config.load.warn_per_cpu {
        Status::Warn
    } else {
        Status::Ok
    };
    check(
        "system.load",
        status,
        format!("load {one:.2} {five:.2} {fifteen:.2} on {cpus} CPUs"),
    )
}

/// CPUs online, from a list such as `0-3,6`.
fn cpu_count(host: &Host) -> Option<u32> {
    let text = read_trimmed(&host.sys.join("devices/system/cpu/online")).ok()?;
    text.split(',').try_fold(0u32, |count, range| {
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?),
            None => {
                let only = range.parse::<u32>().ok()?;
                (only, only)
            }
        };
        Some(count + last.checked_sub(first)? + 1)
    })
}

fn memory(config: &AgentConfig, host: &Host) -> Check {
    let path = host.proc.join("meminfo");
    let text = match read_trimmed(&path) {
        Ok(text) => text,
        Err(reason) => return check("system.memory", Status::Fail, reason),
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    let (Some(total_kib), Some(available_kib)) = (field("MemTotal"), field("MemAvailable")) else {
        return check(
            "system.memory",
            Status::Fail,
            format!("{} lacks MemTotal or MemAvailable", path.display()),
        );
    };
    if total_kib == 0 {
        return check("system.memory", Status::Fail, "MemTotal is 0");
    }
    let used_kib = total_kib.saturating_sub(available_kib);
    let percent = used_kib as f64 * 100.0 / total_kib as f64;
    check(
        "system.memory",
        grade(percent, config.memory),
        format!(
            "{percent:.0}% used ({} of {} MiB){}",
            used_kib / 1024,
            total_kib / 1024,
            threshold_note(
                percent,
                config.memory.warn_percent,
                config.memory.fail_percent
            )
        ),
    )
}

fn threshold_note(percent: f64, warn: u8, fail: u8) -> String {
    if percent >= f64::from(fail) {
        format!(", at or over the fail threshold {fail}%")
    } else if percent >= f64::from(warn) {
        format!(", at or over the warn threshold {warn}%")
    } else {
        String::new()
    }
}

fn disks(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let mounts = match mounts::read(host) {
        Ok(mounts) => mounts,
        Err(reason) => return vec![check("system.disk", Status::Fail, reason)],
    };
    let mut seen_sources = Vec::new();
    let mut checks = Vec::new();
    for mount in mounts {
        // A device bind-mounted twice is one filesystem: report it at its first mount.
        if !DISK_FILESYSTEMS.contains(&mount.fstype.as_str())
            || seen_sources.contains(&mount.source)
        {
            continue;
        }
        let name = format!("system.disk.{}", mount.point.display());
        checks.push(match host.fs_stats.usage(&mount.point) {
            Ok(usage) => {
                let percent = usage.percent_used();
                check(
                    name,
                    grade(percent, config.disk),
                    format!(
                        "{percent:.0}% used, {} GiB free ({}){}",
                        usage.available / (1 << 30),
                        mount.fstype,
                        threshold_note(percent, config.disk.warn_percent, config.disk.fail_percent)
                    ),
                )
            }
            Err(reason) => check(name, Status::Fail, reason),
        });
        seen_sources.push(mount.source);
    }
    checks
}

fn kernel(host: &Host) -> Check {
    match read_trimmed(&host.proc.join("sys/kernel/osrelease")) {
        Ok(release) => check("system.kernel", Status::Ok, format!("Linux {release}")),
        Err(reason) => check("system.kernel", Status::Fail, reason),
    }
}

/// systemd-timesyncd touches a flag file once synchronized; other NTP daemons (chrony)
/// are asked through `timedatectl`, which reads the kernel's own sync status.
async fn clock(host: &Host) -> Check {
    if host.run.join("systemd/timesync/synchronized").exists() {
        return check(
            "system.clock",
            Status::Ok,
            "synchronized (systemd-timesyncd)",
        );
    }
    let output = tokio::time::timeout(
        HELPER_TIMEOUT,
        tokio::process::Command::new(&host.timedatectl)
            .args(["show", "-p", "NTPSynchronized", "--value"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let program = host.timedatectl.display();
    match output {
        Err(_) => check(
            "system.clock",
            Status::Warn,
            format!(
                "cannot tell: {program} timed out after {} s",
                HELPER_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(error)) => check(
            "system.clock",
            Status::Warn,
            format!("cannot tell: {program}: {error}"),
        ),
        Ok(Ok(output)) if !output.status.success() => check(
            "system.clock",
            Status::Warn,
            format!(
                "cannot tell: {program} {}: {}",
                output.status,
                first_line(&String::from_utf8_lossy(&output.stderr))
            ),
        ),
        Ok(Ok(output)) => match String::from_utf8_lossy(&output.stdout).trim() {
            "yes" => check("system.clock", Status::Ok, "synchronized"),
            _ => check("system.clock", Status::Warn, "not synchronized to NTP"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_used_counts_like_df() {
        let usage = DiskUsage {
            used: 90,
            available: 10,
        };
        assert!((usage.percent_used() - 90.0).abs() < f64::EPSILON);
        let empty = DiskUsage {
            used: 0,
            available: 0,
        };
        assert!(empty.percent_used().abs() < f64::EPSILON);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(59.9), "0m 59s");
        assert_eq!(human_duration(3_725.0), "1h 2m");
        assert_eq!(human_duration(270_000.0), "3d 3h");
    }
}
