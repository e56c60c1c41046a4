//! The checks against fixture trees (every status transition) and against the real host.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_agent::checks::{self, DiskUsage, FsStats, Host};
use kiln_agent::config::{AgentConfig, CommandCheck, Endpoint, LoadThresholds};
use kiln_agent::report::{Check, Status};

/// Disk use by mount point, in percent.
struct FixedUsage(HashMap<PathBuf, u64>);

impl FsStats for FixedUsage {
    fn usage(&self, mount_point: &Path) -> Result<DiskUsage, String> {
        let percent = self
            .0
            .get(mount_point)
            .ok_or_else(|| format!("no fixture for {}", mount_point.display()))?;
        Ok(DiskUsage {
            used: percent * 1024,
            available: (100 - percent) * 1024,
        })
    }
}

const MOUNTS: &str = "\
/dev/vda1 / ext4 rw,relatime 0 0
/dev/vdb1 /var/lib/data xfs rw 0 0
/dev/vdc1 /srv ext4 rw 0 0
proc /proc proc rw 0 0
tmpfs /run tmpfs rw 0 0
/dev/vda1 /mnt/bind ext4 rw 0 0
10.0.0.5:/tank/media /mnt/media nfs4 rw,vers=4.2 0 0
";

const SHOW: &str = "LoadState=loaded\nActiveState=active\nSubState=running\n\n\
                    LoadState=loaded\nActiveState=inactive\nSubState=dead\n";

/// A host tree with the files the checks read, a fake `systemctl` that prints `SHOW`, and
/// a `timedatectl` that says the clock is synchronized.
struct Fixture {
    dir: tempfile::TempDir,
    host: Host,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = [
            ("proc/sys/kernel/hostname", "cp1\n"),
            ("proc/sys/kernel/osrelease", "6.1.0-28-amd64\n"),
            ("proc/uptime", "93784.12 180000.00\n"),
            ("proc/loadavg", "0.50 0.40 0.30 1/200 4242\n"),
            (
                "proc/meminfo",
                "MemTotal:        4000000 kB\nMemFree:          100000 kB\nMemAvailable:    3000000 kB\n",
            ),
            ("proc/mounts", MOUNTS),
            (
                "proc/net/route",
                "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
            ),
            ("sys/devices/system/cpu/online", "0-1\n"),
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            (
                "bin/systemctl",
                &format!("#!/bin/sh\ncat <<'END'\n{SHOW}END\n"),
            ),
            ("bin/timedatectl", "#!/bin/sh\necho yes\n"),
        ];
        for (path, text) in files {
            write(&root.join(path), text);
        }
        for program in ["bin/systemctl", "bin/timedatectl"] {
            std::fs::set_permissions(root.join(program), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let usage = [("/", 50), ("/var/lib/data", 90), ("/srv", 97)]
            .map(|(mount, percent)| (PathBuf::from(mount), percent));
        let host = Host {
            proc: root.join("proc"),
            sys: root.join("sys"),
            etc: root.join("etc"),
            run: root.join("run"),
            systemctl: root.join("bin/systemctl"),
            timedatectl: root.join("bin/timedatectl"),
            fs_stats: Arc::new(FixedUsage(usage.into_iter().collect())),
        };
        Self { dir, host }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config() -> AgentConfig {
    serde_json::from_str(
        r#"{"node":"cp1","cluster":"home","collector":{"url":"https://127.0.0.1:8443",
            "fingerprint":"ab","token_file":"/nonexistent"}}"#,
    )
    .unwrap()
}

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|check| check.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

#[tokio::test]
async fn disk_use_grades_ok_warn_fail_and_a_bind_mount_counts_once() {
    let fixture = Fixture::new();
    let checks = checks::run_all(&config(), &fixture.host).await;
    assert_eq!(find(&checks, "system.disk./").status, Status::Ok);
    let warn = find(&checks, "system.disk./var/lib/data");
    assert_eq!(warn.status, Status::Warn);
    assert!(
        warn.detail.contains("90% used") && warn.detail.contains("85%"),
        "{}",
        warn.detail
    );
    let fail = find(&checks, "system.disk./srv");
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.detail.contains("97% used") && fail.detail.contains("95%"),
        "{}",
        fail.detail
    );
    let disks: Vec<&str> = checks
        .iter()
        .filter(|c| c.name.starts_with("system.disk."))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        disks,
        [
            "system.disk./",
            "system.disk./var/lib/data",
            "system.disk./srv"
        ]
    );
}

#[tokio::test]
async fn system_and_identity_read_the_tree() {
    let fixture = Fixture::new();
    let checks = checks::run_all(&config(), &fixture.host).await;
    let identity = find(&checks, "identity");
    assert_eq!(identity.status, Status::Ok, "{}", identity.detail);
    assert!(identity.detail.contains("host cp1"), "{}", identity.detail);
    assert!(
        !identity.detail.contains("0123456789abcdef0123"),
        "machine-id shown whole"
    );
    assert_eq!(find(&checks, "system.uptime").detail, "up 1d 2h");
    assert_eq!(
        find(&checks, "system.load").detail,
        "load 0.50 0.40 0.30 on 2 CPUs"
    );
    let memory = find(&checks, "system.memory");
    assert_eq!(
        (memory.status, memory.detail.as_str()),
        (Status::Ok, "25% used (976 of 3906 MiB)")
    );
    assert_eq!(
        find(&checks, "system.kernel").detail,
        "Linux 6.1.0-28-amd64"
    );
    assert_eq!(find(&checks, "system.clock").status, Status::Ok);
    assert_eq!(
        find(&checks, "network.route").detail,
        "default via 10.0.0.1 dev eth0"
    );
}

#[tokio::test]
async fn memory_over_the_fail_threshold_fails_and_a_foreign_hostname_warns() {
    let fixture = Fixture::new();
    write(
        &fixture.root().join("proc/meminfo"),
        "MemTotal: 1000000 kB\nMemAvailable: 10000 kB\n",
    );
    write(&fixture.root().join("proc/sys/kernel/hostname"), "debian\n");
    let checks = checks::run_all(&config(), &fixture.host).await;
    assert_eq!(find(&checks, "system.memory").status, Status::Fail);
    let identity = find(&checks, "identity");
    assert_eq!(identity.status, Status::Warn);
    assert!(
        identity.detail.contains("\"debian\" is not the node name"),
        "{}",
        identity.detail
    );
}

#[tokio::test]
async fn an_inactive_unit_fails_and_an_active_one_passes() {
    let fixture = Fixture::new();
    let mut config = config();
    config.units = vec!["sshd.service".into(), "qemu-guest-agent.service".into()];
    let checks = checks::run_all(&config, &fixture.host).await;
    assert_eq!(find(&checks, "unit.sshd").status, Status::Ok);
    let inactive = find(&checks, "unit.qemu-guest-agent");
    assert_eq!(inactive.status, Status::Fail);
    assert_eq!(inactive.detail, "qemu-guest-agent.service inactive (dead)");
}

#[tokio::test]
async fn a_systemctl_that_cannot_answer_fails_every_unit_with_its_message() {
    let fixture = Fixture::new();
    let systemctl = fixture.root().join("bin/systemctl");
    write(
        &systemctl,
        "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n",
    );
    let mut config = config();
    config.units = vec!["k3s.service".into()];
    let checks = checks::run_all(&config, &fixture.host).await;
    let unit = find(&checks, "unit.k3s");
    assert_eq!(unit.status, Status::Fail);
    assert!(
        unit.detail.contains("Failed to connect to bus"),
        "{}",
        unit.detail
    );
}

#[tokio::test]
async fn a_closed_loopback_port_fails_and_an_open_one_passes() {
    let fixture = Fixture::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = config();
    config.endpoints = vec![
        Endpoint {
            name: "api".into(),
            host: "127.0.0.1".into(),
            port: open.local_addr().unwrap().port(),
        },
        Endpoint {
            name: "gone".into(),
            host: "127.0.0.1".into(),
            port: closed.port(),
        },
    ];
    config.dns_names = vec!["localhost".into()];
    let checks = checks::run_all(&config, &fixture.host).await;
    assert_eq!(find(&checks, "network.endpoint.api").status, Status::Ok);
    let gone = find(&checks, "network.endpoint.gone");
    assert_eq!(gone.status, Status::Fail);
    assert!(gone.detail.contains("refused"), "{}", gone.detail);
    assert_eq!(find(&checks, "network.dns.localhost").status, Status::Ok);
}

#[tokio::test]
async fn a_missing_default_route_fails() {
    let fixture = Fixture::new();
    write(
        &fixture.root().join("proc/net/route"),
        "Iface\tDestination\tGateway\n",
    );
    let checks = checks::run_all(&config(), &fixture.host).await;
    assert_eq!(find(&checks, "network.route").status, Status::Fail);
}

#[tokio::test]
async fn commands_pass_fail_and_time_out_by_name() {
    let fixture = Fixture::new();
    let pid_file = fixture.root().join("sleep.pid");
    let mut config = config();
    let command = |name: &str, run: &[&str], timeout_secs| CommandCheck {
        name: name.into(),
        run: run.iter().map(|s| s.to_string()).collect(),
        timeout_secs,
    };
    config.commands = vec![
        command("hello", &["sh", "-c", "echo hello"], 5),
        command(
            "broken",
            &["sh", "-c", "echo 'disk on fire' >&2; exit 3"],
            5,
        ),
        command(
            "slow",
            &[
                "sh",
                "-c",
                &format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
            ],
            1,
        ),
        command("missing", &["/nonexistent/program"], 5),
    ];
    let started = std::time::Instant::now();
    let checks = checks::run_all(&config, &fixture.host).await;
    assert!(
        started.elapsed().as_secs() < 30,
        "the slow command was not stopped"
    );
    assert_eq!(find(&checks, "command.hello").detail, "exit 0: hello");
    let broken = find(&checks, "command.broken");
    assert_eq!(broken.status, Status::Fail);
    assert!(
        broken.detail.contains("exit status: 3: disk on fire"),
        "{}",
        broken.detail
    );
    let slow = find(&checks, "command.slow");
    assert_eq!(
        (slow.status, slow.detail.as_str()),
        (Status::Fail, "sh timed out after 1 s")
    );
    let sleep_pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        gone_or_zombie(sleep_pid.trim()),
        "the timed-out command's child still runs"
    );
    let missing = find(&checks, "command.missing");
    assert_eq!(missing.status, Status::Fail);
    assert!(
        missing.detail.contains("/nonexistent/program"),
        "{}",
        missing.detail
    );
}

/// Whether a process has ended (reaped, or a zombie nobody reaped), waiting up to 2 s.
fn gone_or_zombie(pid: &str) -> bool {
    for _ in 0..20 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(") ")
                    .next()
                    .is_some_and(|rest| rest.starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    false
}

#[tokio::test]
async fn nfs_mounts_are_listed_and_expected_mounts_must_be_there() {
    let fixture = Fixture::new();
    let mut config = config();
    config.mounts = vec!["/mnt/media".into(), "/mnt/backup".into()];
    let checks = checks::run_all(&config, &fixture.host).await;
    assert_eq!(
        find(&checks, "storage.nfs").detail,
        "10.0.0.5:/tank/media on /mnt/media"
    );
    let present = find(&checks, "storage.mount./mnt/media");
    assert_eq!(
        (present.status, present.detail.as_str()),
        (Status::Ok, "10.0.0.5:/tank/media (nfs4)")
    );
    let missing = find(&checks, "storage.mount./mnt/backup");
    assert_eq!(missing.status, Status::Fail);

    let without_nfs: String = MOUNTS
        .lines()
        .filter(|l| !l.contains("nfs4"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(&fixture.root().join("proc/mounts"), &without_nfs);
    let checks = checks::run_all(&config, &fixture.host).await;
    assert_eq!(find(&checks, "storage.nfs").detail, "no NFS mounts");
    assert_eq!(
        find(&checks, "storage.mount./mnt/media").status,
        Status::Fail
    );
}

#[tokio::test]
async fn iscsi_sessions_come_from_sysfs() {
    let fixture = Fixture::new();
    let checks = checks::run_all(&config(), &fixture.host).await;
    assert_eq!(find(&checks, "storage.iscsi").detail, "no iSCSI sessions");

    let sessions = fixture.root().join("sys/class/iscsi_session");
    for (session, target, state) in [
        ("session1", "iqn.2005-10.org.freenas.ctl:k8s-a", "LOGGED_IN"),
        ("session2", "iqn.2005-10.org.freenas.ctl:k8s-b", "LOGGED_IN"),
    ] {
        write(
            &sessions.join(session).join("targetname"),
            &format!("{target}\n"),
        );
        write(&sessions.join(session).join("state"), &format!("{state}\n"));
    }
    let checks = checks::run_all(&config(), &fixture.host).await;
    let iscsi = find(&checks, "storage.iscsi");
    assert_eq!(iscsi.status, Status::Ok);
    assert!(iscsi.detail.starts_with("2 logged in"), "{}", iscsi.detail);

    write(&sessions.join("session2/state"), "FAILED\n");
    let checks = checks::run_all(&config(), &fixture.host).await;
    let iscsi = find(&checks, "storage.iscsi");
    assert_eq!(iscsi.status, Status::Fail);
    assert_eq!(
        iscsi.detail,
        "session2 iqn.2005-10.org.freenas.ctl:k8s-b is FAILED"
    );
}

#[tokio::test]
async fn on_the_real_host_the_hostname_matches_uname_and_memory_is_there() {
    let host = Host::real();
    let checks = checks::run_all(&config(), &host).await;
    let uname = std::process::Command::new("uname")
        .arg("-n")
        .output()
        .unwrap();
    let uname = String::from_utf8(uname.stdout).unwrap();
    let identity = find(&checks, "identity");
    assert!(
        identity
            .detail
            .starts_with(&format!("host {},", uname.trim())),
        "{} vs uname {uname}",
        identity.detail
    );
    let memory = find(&checks, "system.memory");
    assert_ne!(memory.status, Status::Fail, "{}", memory.detail);
    let total_mib: u64 = memory
        .detail
        .split(" of ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in {}", memory.detail));
    assert!(total_mib > 0);
    let root_disk = checks.iter().find(|c| c.name == "system.disk./");
    if let Some(root_disk) = root_disk {
        assert!(root_disk.detail.contains("% used"), "{}", root_disk.detail);
    }
    assert!(find(&checks, "system.kernel").detail.starts_with("Linux "));
}

#[tokio::test]
async fn load_counts_when_both_the_minute_and_five_minute_averages_are_high() {
    let fixture = Fixture::new();
    let loadavg = fixture.root().join("proc/loadavg");
    // Two CPUs: warn at 4, fail at 8.
    for (averages, expected) in [
        ("1.10 5.00 3.92", Status::Ok),   // a boot's load, already over
        ("9.00 1.00 0.50", Status::Ok),   // a spike, not sustained
        ("4.50 4.20 2.00", Status::Warn), // busy now and for minutes
        ("8.50 9.00 7.00", Status::Fail),
    ] {
        write(&loadavg, &format!("{averages} 1/200 4242\n"));
        let checks = checks::run_all(&config(), &fixture.host).await;
        let load = find(&checks, "system.load");
        assert_eq!(load.status, expected, "{averages}: {}", load.detail);
    }

    // The thresholds come from the config (the lab raises them).
    let mut raised = config();
    raised.load = LoadThresholds {
        warn_per_cpu: 10.0,
        fail_per_cpu: 20.0,
    };
    for (averages, expected) in [
        ("8.50 9.00 7.00", Status::Ok),
        ("21.0 22.0 9.00", Status::Warn),
        ("41.0 40.0 9.00", Status::Fail),
    ] {
        write(&loadavg, &format!("{averages} 1/200 4242\n"));
        let checks = checks::run_all(&raised, &fixture.host).await;
        let load = find(&checks, "system.load");
        assert_eq!(load.status, expected, "{averages}: {}", load.detail);
    }
}
