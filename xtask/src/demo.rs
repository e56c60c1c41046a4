//! `cargo xtask demo`: kiln's main job, start to end, on the built-in lab.
//!
//! It installs what is missing, builds kiln, builds (or reuses) the golden
//! image, starts a Proxmox-compatible lab with real QEMU guests (two lab PVE
//! nodes, everything inside the network namespace `kiln-lab-demo`) and the
//! collector inside it, then rebuilds `inventory/examples/lab.yaml`, shows
//! every node healthy, and runs a node-loss drill with its recovery-time
//! report. `cargo xtask demo --down` removes all of it. The end-to-end tests
//! drive the lab through the same harness (`kiln-e2e`).

use std::time::{Duration, Instant};

use anyhow::bail;
use kiln_e2e::{COLLECTOR_LISTEN, LabHarness};

use crate::{build_binaries, setup, workspace_root};

const LAB: &str = "demo";
const INVENTORY: &str = "inventory/examples/lab.yaml";

pub fn run_demo(down: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    let dir = root.join("target/kiln-demo");
    let bin = root.join("target/debug");
    let lab = LabHarness::new(LAB, &root, &dir, &bin, &root.join(INVENTORY));
    if down {
        lab.down()?;
        println!(
            "xtask demo: removed the lab, the collector and {}",
            dir.display()
        );
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the demo creates a network namespace and QEMU guests: run it as root (sudo -E cargo xtask demo)"
        );
    }
    let started = Instant::now();
    let mut stages = Stages::default();
    stages.begin(
        1,
        "install what is missing (Debian packages, the OpenBao venv)",
    );
    setup::ensure_all()?;
    stages.begin(
        2,
        "build kiln, kiln-lab and kiln-agent (the agent optimized: it goes onto every guest)",
    );
    build_binaries()?;
    stages.begin(
        3,
        "build the golden Debian 12 image (or reuse the cached one)",
    );
    lab.kiln(&["image", "build", "debian-12"])?;
    if dir.exists() {
        println!("(removing an earlier demo first)");
        lab.down()?;
    }
    stages.begin(
        4,
        "start the lab: 2 Proxmox-compatible nodes with real QEMU guests, in namespace kiln-lab-demo",
    );
    lab.start_lab(2, &[])?;
    stages.begin(
        5,
        "start the collector (kiln serve) inside the lab, where the guests' agents reach it",
    );
    lab.start_collector()?;
    stages.begin(
        6,
        "make the inventory's templates on the lab (kiln image ensure)",
    );
    lab.in_lab(&["kiln", "image", "ensure", "--yes"])?;
    stages.begin(
        7,
        "rebuild the cluster (kiln rebuild --yes): 3 VMs cloned, booted, agents deployed, healthy",
    );
    lab.in_lab(&["kiln", "rebuild", "--yes"])?;
    stages.begin(
        8,
        "every node healthy, as the collector sees it (kiln status)",
    );
    lab.in_lab(&["kiln", "status"])?;
    stages.begin(
        9,
        "a disaster-recovery drill: lose one node, detect, recover, report the RTO",
    );
    let report = dir.join("drill-report.md");
    let report_arg = report.display().to_string();
    lab.in_lab(&[
        "kiln",
        "drill",
        "node-loss",
        "--yes",
        "--report",
        &report_arg,
    ])?;
    stages.end();
    println!(
        "\nxtask demo: done in {:.0?}. The lab is still running:\n  \
         target/debug/kiln-lab exec --credentials {creds} -- target/debug/kiln status -i {INVENTORY}\n  \
         the collector inside the lab: https://{COLLECTOR_LISTEN}/ (status page, /metrics)\n  \
         the drill report: {report}\n  \
         logs: {logs}\n  \
         remove everything: cargo xtask demo --down",
        started.elapsed(),
        creds = lab.credentials().display(),
        report = report.display(),
        logs = lab.logs().display(),
    );
    Ok(())
}

/// The demo's stages with their times, printed as a table at the end.
#[derive(Default)]
struct Stages {
    done: Vec<(String, Duration)>,
    current: Option<(String, Instant)>,
}

impl Stages {
    fn begin(&mut self, number: u32, what: &str) {
        self.finish_current();
        println!("\n=== {number}. {what}");
        let short = what.split([':', '(']).next().unwrap_or(what).trim_end();
        self.current = Some((format!("{number}. {short}"), Instant::now()));
    }

    fn end(&mut self) {
        self.finish_current();
        println!("\n=== time per stage");
        for (stage, took) in &self.done {
            println!("  {:>6.1} s  {stage}", took.as_secs_f64());
        }
    }

    fn finish_current(&mut self) {
        if let Some((stage, began)) = self.current.take() {
            self.done.push((stage, began.elapsed()));
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}
