//! `kiln apply`: make Proxmox match the inventory.

use std::collections::BTreeSet;

use clap::Args;
use kiln::plan::{PlanOptions, plan};

use super::global::{Exit, GlobalArgs};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Also destroy kiln's VMs of this cluster that the inventory no longer lists.
    #[arg(long)]
    pub prune: bool,
    /// Only these nodes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &ApplyArgs) -> anyhow::Result<Exit> {
    load::runtime()?.block_on(async {
        let session = match Session::open(global, "apply").await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let options = PlanOptions {
            prune: args.prune,
            only: (!args.only.is_empty())
                .then(|| args.only.iter().cloned().collect::<BTreeSet<_>>()),
            ..PlanOptions::default()
        };
        let result = session
            .converge("apply", |inventory, observed| {
                plan(inventory, observed, &options)
            })
            .await;
        session.release().await?;
        Ok(result?.exit)
    })
}
