//! `kiln drill SCENARIO`: break part of the cluster on purpose (VMs stopped
//! hard and deleted, the way a lost disk or host leaves them), time how long
//! the collector takes to notice, recover with `node replace`'s code, and
//! report the recovery time per phase.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use clap::Args;
use kiln::drill::{DrillReport, ReportPhase, Scenario, Target, TimelineEntry, targets};
use kiln::engine::{CollectorLink, Expired, Look, Pause, Timeline, poll_until};
use kiln::plan::{PlanOptions, desired_vms, destroy_plan, plan};
use kiln_collector::NodeState;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct DrillArgs {
    pub scenario: Scenario,
    /// node-loss: the node to lose; host-loss: the Proxmox node. Default: drawn at random (`--seed`).
    #[arg(long)]
    pub target: Option<String>,
    /// Seed for the random pick; printed so a drill can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The drill fails when recovery takes longer (e.g. `10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub rto_budget: Option<Duration>,
    /// Also write the report here: JSON when the name ends in `.json`, else Markdown.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run even when not every node is healthy before the drill.
    #[arg(long)]
    pub force: bool,
    /// How long the collector may take to notice the loss.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub detect_timeout: Duration,
}

pub fn run(global: &GlobalArgs, args: &DrillArgs) -> anyhow::Result<Exit> {
    load::runtime()?.block_on(async {
        let command = format!("drill {}", args.scenario.as_str());
        let session = match Session::open(global, &command).await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let result = drill(global, args, &session).await;
        session.release().await?;
        result
    })
}

async fn drill(
    global: &GlobalArgs,
    args: &DrillArgs,
    session: &Session<'_>,
) -> anyhow::Result<Exit> {
    let inventory = session.inventory();
    let Some(collector) = session.collector().await? else {
        bail!(
            "a drill measures detection through the collector: the inventory needs an `agent` section"
        );
    };
    let desired = desired_vms(inventory);
    let all_nodes: Vec<String> = desired.iter().map(|vm| vm.node.clone()).collect();
    let unhealthy = collector
        .unhealthy(&all_nodes)
        .await
        .context("cannot read the collector before the drill")?;
    if !unhealthy.is_empty() && !args.force {
        eprintln!("kiln: the cluster is not all healthy, so a drill would measure nothing clean:");
        for line in &unhealthy {
            eprintln!("  {line}");
        }
        eprintln!("kiln: fix it first (`kiln status`), or pass --force");
        return Ok(Exit::Failure);
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let observed = session.observed().await?;
    let cluster = inventory.cluster.name.as_str();
    let broken = targets(
        args.scenario,
        cluster,
        &desired,
        &observed,
        args.target.as_deref(),
        seed,
    )?;
    let names: BTreeSet<String> = broken.iter().map(|target| target.node.clone()).collect();
    eprintln!(
        "kiln: drill {} (seed {seed}) breaks {}",
        args.scenario.as_str(),
        describe_targets(&broken)
    );

    let clock = Clock::start();
    let mut timeline = vec![clock.entry("breaking: stop hard and delete")];
    let broke = session
        .converge("break", |inventory, observed| {
            destroy_plan(inventory, observed, Some(&names))
        })
        .await?;
    if broke.exit != Exit::Success {
        eprintln!("kiln: the drill did not break anything; nothing to measure");
        return Ok(broke.exit);
    }
    let lost_at = Instant::now();
    timeline.push(clock.entry("lost: the VMs are gone"));

    let mut report = DrillReport {
        cluster: cluster.to_owned(),
        scenario: args.scenario,
        targets: broken.clone(),
        recovery_run: None,
        timeline: Vec::new(),
        time_to_detect_seconds: 0.0,
        phases: Vec::new(),
        rto_seconds: 0.0,
        rto_budget_seconds: None,
        recovered: false,
        passed: false,
        failure: None,
    };
    let failure = match detect(&collector, &names, args.detect_timeout).await {
        Err(reason) => Some(reason),
        Ok(()) => {
            let detected_at = Instant::now();
            report.time_to_detect_seconds = (detected_at - lost_at).as_secs_f64();
            timeline.push(clock.entry("detected: the collector reports the loss"));
            let recovery = Arc::new(Timeline::default());
            let options = PlanOptions {
                only: Some(names.clone()),
                ..PlanOptions::default()
            };
            let recovered = session
                .converge_watched(
                    "recover",
                    |inventory, observed| plan(inventory, observed, &options),
                    Some(recovery.clone()),
                )
                .await?;
            let recovered_at = Instant::now();
            report.recovery_run = recovered.run.map(|run| run.to_string());
            timeline.push(clock.entry("recovered: the recovery run ended"));
            report.phases = phases(&recovery, &names, lost_at, detected_at, recovered_at);
            report.rto_seconds = (recovered_at - lost_at).as_secs_f64();
            if recovered.exit != Exit::Success {
                Some("the recovery run failed (see above and `kiln runs show`)".to_owned())
            } else {
                collector
                    .unhealthy(&all_nodes)
                    .await
                    .map_err(|error| error.to_string())
                    .and_then(|unhealthy| match unhealthy.is_empty() {
                        true => Ok(()),
                        false => Err(format!(
                            "not healthy after recovery: {}",
                            unhealthy.join(", ")
                        )),
                    })
                    .err()
            }
        }
    };
    report.timeline = timeline;
    report.conclude(args.rto_budget, failure);
    emit(global, args, &report)?;
    Ok(if report.passed {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn describe_targets(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|target| {
            format!(
                "{} (VM {} on {})",
                target.node, target.vmid, target.pve_node
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls the collector until every lost node is stale or failing.
async fn detect(
    collector: &CollectorLink,
    nodes: &BTreeSet<String>,
    patience: Duration,
) -> Result<(), String> {
    poll_until(patience, Pause::every(Duration::from_secs(1)), || async {
        let views = match collector.nodes().await {
            Ok(views) => views,
            Err(error) => return Look::Waiting(error.to_string()),
        };
        let waiting: Vec<String> = nodes
            .iter()
            .filter(|node| {
                !views
                    .get(*node)
                    .is_some_and(|view| matches!(view.state, NodeState::Stale | NodeState::Failing))
            })
            .map(|node| {
                let state = views
                    .get(node)
                    .map_or("unknown", |view| view.state.as_str());
                format!("{node} ({state})")
            })
            .collect();
        if waiting.is_empty() {
            Look::Ready(())
        } else {
            Look::Waiting(format!("still reported as fine: {}", waiting.join(", ")))
        }
    })
    .await
    .map_err(|Expired { last, .. }| {
        format!(
            "the collector did not notice the loss within {} ({last})",
            humantime::format_duration(patience)
        )
    })
}

/// detect, prepare (lock, observe, plan), then the phases of the node that
/// came back last, then what the run did after it: contiguous, so they add
/// up to the RTO.
fn phases(
    recovery: &Timeline,
    nodes: &BTreeSet<String>,
    lost_at: Instant,
    detected_at: Instant,
    recovered_at: Instant,
) -> Vec<ReportPhase> {
    let now = (Instant::now(), SystemTime::now());
    let wall = |at: Instant| now.1 - now.0.saturating_duration_since(at);
    let mut phases = vec![ReportPhase {
        phase: "detect".into(),
        seconds: (detected_at - lost_at).as_secs_f64(),
    }];
    let slowest = nodes
        .iter()
        .map(|node| recovery.phases(node))
        .filter(|spans| !spans.is_empty())
        .max_by_key(|spans| spans.iter().map(|span| span.start + span.duration).max());
    let Some(spans) = slowest else {
        phases.push(ReportPhase {
            phase: "recover".into(),
            seconds: (recovered_at - detected_at).as_secs_f64(),
        });
        return phases;
    };
    let seconds_between = |from: SystemTime, to: SystemTime| {
        to.duration_since(from).unwrap_or_default().as_secs_f64()
    };
    let first = spans[0].start;
    phases.push(ReportPhase {
        phase: "prepare".into(),
        seconds: seconds_between(wall(detected_at), first),
    });
    let mut end = first;
    for span in &spans {
        phases.push(ReportPhase {
            phase: span.phase.as_str().into(),
            seconds: span.duration.as_secs_f64(),
        });
        end = span.start + span.duration;
    }
    phases.push(ReportPhase {
        phase: "finish".into(),
        seconds: seconds_between(end, wall(recovered_at)),
    });
    phases
}

fn emit(global: &GlobalArgs, args: &DrillArgs, report: &DrillReport) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        let text = match path.extension().and_then(|ext| ext.to_str()) {
            Some("json") => serde_json::to_string_pretty(report)?,
            _ => report.to_markdown(),
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(report)?),
        OutputFormat::Text => print!("{}", report.to_markdown()),
    }
    Ok(())
}

/// Seconds since the drill started, for its timeline.
struct Clock(Instant);

impl Clock {
    fn start() -> Self {
        Self(Instant::now())
    }

    fn entry(&self, what: &str) -> TimelineEntry {
        TimelineEntry {
            at_seconds: self.0.elapsed().as_secs_f64(),
            what: what.to_owned(),
        }
    }
}
