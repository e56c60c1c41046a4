//! What one report cycle costs, printed against the goals (≤ 5 ms CPU per cycle, ≤ 10 MiB
//! RSS): in-process CPU time for check + serialize (and + send to a loopback collector),
//! then a real `kiln-agent run` process measured from outside through /proc/PID.

#![allow(clippy::unwrap_used)]

// The bench uses only part of the test collector.
#[allow(dead_code)]
#[path = "../tests/support/collector.rs"]
mod collector;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use collector::TestCollector;
use kiln_agent::agent::{self, Agent};
use kiln_agent::checks::Host;
use kiln_agent::config::AgentConfig;
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::{SysconfVar, sysconf};

const CYCLES: u32 = 200;
const PROCESS_SECONDS: u64 = 20;
const CPU_GOAL_MS: f64 = 5.0;
const RSS_GOAL_KIB: u64 = 10 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(measure());
}

async fn measure() {
    let collector = TestCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &collector);
    println!(
        "kiln-agent cycle bench ({CYCLES} cycles in-process, {PROCESS_SECONDS} s of a real process)"
    );
    if !Path::new("/run/systemd/timesync/synchronized").exists() {
        println!(
            "  note: no systemd-timesyncd flag here, so each cycle runs timedatectl (child CPU)"
        );
    }

    let (own, children) = cpu_of(|| async {
        for sequence in 0..u64::from(CYCLES) {
            let report = agent::snapshot(&config, &Host::real(), sequence).await;
            std::hint::black_box(serde_json::to_vec(&report).unwrap());
        }
    })
    .await;
    report_cpu("check + serialize", own, children, CYCLES);

    let mut agent = Agent::new(config.clone(), Host::real()).unwrap();
    let (own, children) = cpu_of(|| async {
        for _ in 0..CYCLES {
            agent.cycle().await.unwrap();
        }
    })
    .await;
    report_cpu("check + serialize + send (TLS)", own, children, CYCLES);
    println!("    (in-process, this also counts the test collector's side of each TLS handshake)");

    measure_process(dir.path(), &collector).await;
}

fn write_config(dir: &Path, collector: &TestCollector) -> AgentConfig {
    let token = dir.join("token");
    std::fs::write(&token, "bench-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = serde_json::json!({
        "node": "bench", "cluster": "bench", "interval_secs": 1,
        "state_dir": dir.join("state"),
        "collector": {"url": collector.url(), "fingerprint": collector.fingerprint.to_string(),
                      "token_file": token},
        "endpoints": [{"name": "collector", "host": "127.0.0.1", "port": collector.addr.port()}],
        "dns_names": ["localhost"],
        "mounts": ["/"],
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    AgentConfig::load(&dir.join("config.json")).unwrap()
}

/// CPU time (own, children) spent while `work` runs.
async fn cpu_of<F, Fut>(work: F) -> (Duration, Duration)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let own = || cpu_time(UsageWho::RUSAGE_SELF);
    let children = || cpu_time(UsageWho::RUSAGE_CHILDREN);
    let (own_before, children_before) = (own(), children());
    work().await;
    (own() - own_before, children() - children_before)
}

fn cpu_time(who: UsageWho) -> Duration {
    let usage = getrusage(who).unwrap();
    let (user, system) = (usage.user_time(), usage.system_time());
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(user) + micros(system))
}

fn report_cpu(what: &str, own: Duration, children: Duration, cycles: u32) {
    let per_cycle = own.as_secs_f64() * 1000.0 / f64::from(cycles);
    let children_per_cycle = children.as_secs_f64() * 1000.0 / f64::from(cycles);
    println!(
        "  {what:<32} {per_cycle:>6.3} ms CPU/cycle (goal ≤ {CPU_GOAL_MS} ms: {}), helper processes {children_per_cycle:.3} ms/cycle",
        verdict(per_cycle <= CPU_GOAL_MS)
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Kills the agent process when the bench ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure_process(dir: &Path, collector: &TestCollector) {
    let started = Instant::now();
    let agent = Running(
        Command::new(env!("CARGO_BIN_EXE_kiln-agent"))
            .args(["run", "--config"])
            .arg(dir.join("config.json"))
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let before = collector.received().len();
    // Measure from the first report on, so start-up is not counted as cycle cost.
    while collector.received().len() == before && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = collector.received().len();
    let (cpu_start, children_start) = process_cpu(pid);
    tokio::time::sleep(Duration::from_secs(PROCESS_SECONDS)).await;
    let (cpu_end, children_end) = process_cpu(pid);
    let cycles = u32::try_from(collector.received().len() - first)
        .unwrap()
        .max(1);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap()
    };
    let (peak, now) = (field("VmHWM:"), field("VmRSS:"));
    drop(agent);
    println!("  real `kiln-agent run` (pid {pid}, interval 1 s, {cycles} reports measured):");
    println!(
        "    (/proc/PID/stat counts in clock ticks: ±{:.1} ms per cycle)",
        1000.0 / ticks_per_second() / f64::from(cycles)
    );
    report_cpu(
        "  CPU from /proc/PID/stat",
        cpu_end - cpu_start,
        children_end - children_start,
        cycles,
    );
    println!(
        "    peak RSS (VmHWM)                 {:>6.2} MiB (goal ≤ 10 MiB: {}), now {:.2} MiB",
        peak as f64 / 1024.0,
        verdict(peak <= RSS_GOAL_KIB),
        now as f64 / 1024.0
    );
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_kiln-agent"))
        .unwrap()
        .len();
    println!(
        "    binary size                      {:>6.2} MiB",
        size as f64 / (1024.0 * 1024.0)
    );
}

/// (own, reaped children) CPU time of a process, from utime/stime/cutime/cstime.
fn process_cpu(pid: u32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<u64> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 of stat(5); index 0 here is field 3.
    let seconds = |ticks: u64| Duration::from_secs_f64(ticks as f64 / ticks_per_second());
    (
        seconds(fields[11] + fields[12]),
        seconds(fields[13] + fields[14]),
    )
}

fn ticks_per_second() -> f64 {
    sysconf(SysconfVar::CLK_TCK).unwrap().unwrap() as f64
}
