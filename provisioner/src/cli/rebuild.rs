//! `kiln rebuild`: destroy the cluster's VMs and create them again, in one
//! run under one lock; secrets are kept, so the cluster keeps its identity.

use clap::Args;
use kiln::plan::{PlanOptions, destroy_plan, plan};

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct RebuildArgs {}

pub fn run(global: &GlobalArgs, _args: &RebuildArgs) -> anyhow::Result<Exit> {
    load::runtime()?.block_on(async {
        let session = match Session::open(global, "rebuild").await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let result = async {
            let destroyed = session
                .converge("destroy", |inventory, observed| {
                    destroy_plan(inventory, observed, None)
                })
                .await?;
            if destroyed.exit != Exit::Success {
                return Ok(destroyed.exit);
            }
            let created = session
                .converge("create", |inventory, observed| {
                    plan(inventory, observed, &PlanOptions::default())
                })
                .await?;
            let total = destroyed.elapsed + created.elapsed;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({
                        "event": "rebuild_phases",
                        "destroy_seconds": destroyed.elapsed.as_secs_f64(),
                        "create_seconds": created.elapsed.as_secs_f64(),
                        "total_seconds": total.as_secs_f64(),
                    })
                ),
                OutputFormat::Text => eprintln!(
                    "Rebuild of `{}`: destroy {:.1}s, create {:.1}s, total {:.1}s.",
                    session.inventory().cluster.name,
                    destroyed.elapsed.as_secs_f64(),
                    created.elapsed.as_secs_f64(),
                    total.as_secs_f64()
                ),
            }
            Ok::<_, anyhow::Error>(created.exit)
        }
        .await;
        session.release().await?;
        result
    })
}
