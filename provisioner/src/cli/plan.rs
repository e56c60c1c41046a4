//! `kiln plan`: what `kiln apply` would do, per node and per field.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Args;
use kiln::engine::{StorageRun, observe, proxmox_client, storage_plan};
use kiln::plan::{PlanOptions, plan};
use kiln::secrets::ClusterSecrets;
use kiln_secrets::Dirs;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use crate::ui::plan_view;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 2 when changes are pending (0: none, 1: error).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also destroy kiln's VMs of this cluster that the inventory no longer lists.
    #[arg(long)]
    pub prune: bool,
    /// Only these nodes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &PlanArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let (observed, storage) = load::runtime()?.block_on(async {
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(&inventory, &dirs).await?;
        let client = proxmox_client(&inventory, &secrets).await?;
        let observed = observe(&client, &inventory)
            .await
            .context("cannot read the VMs from Proxmox")?;
        let storage = match kiln::storage::connect(&inventory, &secrets).await? {
            Some(setup) => Some(
                storage_plan(&StorageRun::new(setup))
                    .await
                    .context("cannot plan TrueNAS")?,
            ),
            None => None,
        };
        anyhow::Ok((observed, storage))
    })?;
    let options = PlanOptions {
        prune: args.prune,
        only: (!args.only.is_empty()).then(|| args.only.iter().cloned().collect::<BTreeSet<_>>()),
        ..PlanOptions::default()
    };
    let plan = match plan(&inventory, &observed, &options) {
        Ok(plan) => kiln::plan::Plan { storage, ..plan },
        Err(errors) => {
            for error in &errors {
                eprintln!("kiln: {error}");
            }
            return Ok(Exit::Failure);
        }
    };
    match global.output {
        OutputFormat::Json => println!("{}", plan_view::json(&plan)),
        OutputFormat::Text => print!("{}", plan_view::text(&plan)),
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Exit::ChangesPending
    } else {
        Exit::Success
    })
}
