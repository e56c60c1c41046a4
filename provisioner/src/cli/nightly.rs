//! `kiln nightly`: build an ephemeral copy of the cluster from an inventory
//! profile, verify it, and always tear it down (on success, failure,
//! timeout or Ctrl-C), unless `--keep-on-failure` keeps a failed copy to
//! look at. Leftovers of an earlier, crashed nightly are removed first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use kiln::engine::Timeline;
use kiln::nightly::{NightlyCase, NightlySummary, junit_xml};
use kiln::plan::{PlanOptions, desired_vms, destroy_plan, plan};
use kiln::secrets::ClusterSecrets;
use kiln_inventory::values::{EnvOr, Fingerprint};
use kiln_secrets::Dirs;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use super::session::{PhaseResult, Session};

#[derive(Debug, Args)]
pub struct NightlyArgs {
    /// The inventory profile that describes the copy (other names, VMIDs, IPs).
    #[arg(long, default_value = "nightly")]
    pub profile: String,
    /// Write a JUnit XML report here (one test case per phase per node).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the JSON summary here (it is also printed with `-o json`).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Leave a failed copy running for inspection instead of tearing it down.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Give up building the copy after this long (teardown still runs).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub fn run(global: &GlobalArgs, args: &NightlyArgs) -> anyhow::Result<Exit> {
    let Some(live) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let mut copy = live
        .with_profile(&args.profile)
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", global.inventory.display()))?;
    load::runtime()?.block_on(async {
        // The copy reports to the live cluster's collector, so its agents
        // pin that collector's certificate, not one of the copy's own.
        if let Some(agent) = copy.agent.as_mut() {
            let secrets = ClusterSecrets::open(&live, &Dirs::from_env()?).await?;
            let pin = load::collector_pin(&live, &secrets).await?;
            agent.collector_fingerprint = Some(EnvOr::Value(Fingerprint(*pin.as_bytes())));
        }
        let mut session = match Session::open_with(global, "nightly", copy).await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        session.destroy_without_asking();
        let result = nightly(args, &session).await;
        session.release().await?;
        let summary = result?;
        emit(global, args, &summary)?;
        Ok(if summary.passed {
            Exit::Success
        } else {
            Exit::Failure
        })
    })
}

async fn nightly(args: &NightlyArgs, session: &Session<'_>) -> anyhow::Result<NightlySummary> {
    let started = Instant::now();
    let inventory = session.inventory();
    let mut summary = NightlySummary::new(inventory.cluster.name.as_str(), &args.profile);
    eprintln!(
        "kiln nightly: building `{}` (profile `{}`): {}",
        summary.cluster,
        args.profile,
        node_names(session).join(", ")
    );

    let leftovers = session
        .converge("leftovers", |inventory, observed| {
            destroy_plan(inventory, observed, None)
        })
        .await?;
    summary.cases.push(cluster_case("leftovers", &leftovers));
    if leftovers.exit != Exit::Success {
        summary.conclude(started.elapsed());
        return Ok(summary);
    }

    let timeline = Arc::new(Timeline::default());
    let create = session.converge_watched(
        "create",
        |inventory, observed| plan(inventory, observed, &PlanOptions::default()),
        Some(timeline.clone()),
    );
    let created = match tokio::time::timeout(args.timeout, create).await {
        Ok(created) => Some(created?),
        Err(_) => None,
    };
    let why_missing = match &created {
        None => format!(
            "the copy was not built within {}",
            humantime::format_duration(args.timeout)
        ),
        Some(_) => "no step ran for this node".to_owned(),
    };
    summary.add_run(&timeline, &node_names(session), &why_missing);
    if let Some(created) = &created
        && created.exit != Exit::Success
        && summary.cases.iter().all(|case| case.failure.is_none())
    {
        summary.cases.push(cluster_case("create", created));
    }

    let failed = summary.cases.iter().any(|case| case.failure.is_some()) || created.is_none();
    if failed && args.keep_on_failure {
        summary.kept = true;
        eprintln!(
            "kiln nightly: failed; keeping `{}` for inspection (--keep-on-failure). Remove it with `kiln nightly --profile {}` or `kiln destroy` on the profile.",
            summary.cluster, args.profile
        );
    } else {
        let teardown = session
            .converge("teardown", |inventory, observed| {
                destroy_plan(inventory, observed, None)
            })
            .await?;
        summary.cases.push(cluster_case("teardown", &teardown));
    }
    summary.conclude(started.elapsed());
    Ok(summary)
}

fn node_names(session: &Session<'_>) -> Vec<String> {
    desired_vms(session.inventory())
        .into_iter()
        .map(|vm| vm.node)
        .collect()
}

fn cluster_case(phase: &str, result: &PhaseResult) -> NightlyCase {
    let failure = match result.exit {
        Exit::Success => None,
        Exit::Interrupted => Some(format!("{phase} was interrupted")),
        _ => Some(format!("{phase} failed (see `kiln runs`)")),
    };
    NightlyCase::cluster(phase, result.elapsed, failure)
}

fn emit(global: &GlobalArgs, args: &NightlyArgs, summary: &NightlySummary) -> anyhow::Result<()> {
    if let Some(path) = &args.junit {
        let xml = junit_xml(summary)?;
        std::fs::write(path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_string_pretty(summary)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string(summary)?),
        OutputFormat::Text => {
            for case in &summary.cases {
                let verdict = match &case.failure {
                    None => "ok".to_owned(),
                    Some(reason) => format!("FAILED: {reason}"),
                };
                eprintln!(
                    "  {:<24} {:<10} {:>7.1}s  {verdict}",
                    case.node, case.phase, case.seconds
                );
            }
            eprintln!(
                "kiln nightly `{}`: {} in {:.1}s",
                summary.cluster,
                if summary.passed { "passed" } else { "FAILED" },
                summary.seconds
            );
        }
    }
    Ok(())
}
