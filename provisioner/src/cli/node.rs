//! `kiln node add|remove|replace NAME`: one node, nothing else.

use std::collections::BTreeSet;

use clap::{Args, Subcommand};
use kiln::plan::{PlanOptions, destroy_plan, plan};

use super::global::{Exit, GlobalArgs};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Create a node you added to the inventory; touches no other node.
    Add { name: String },
    /// Destroy a node's VM (remove it from the inventory too, or the next apply makes it again).
    Remove { name: String },
    /// Destroy a node's VM and create it again from the inventory.
    Replace { name: String },
}

pub fn run(global: &GlobalArgs, args: &NodeArgs) -> anyhow::Result<Exit> {
    let (verb, name) = match &args.command {
        NodeCommand::Add { name } => ("add", name),
        NodeCommand::Remove { name } => ("remove", name),
        NodeCommand::Replace { name } => ("replace", name),
    };
    let only = BTreeSet::from([name.clone()]);
    load::runtime()?.block_on(async {
        let session = match Session::open(global, &format!("node {verb} {name}")).await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let result = match &args.command {
            NodeCommand::Remove { .. } => {
                session
                    .converge(verb, |inventory, observed| {
                        destroy_plan(inventory, observed, Some(&only))
                    })
                    .await
            }
            NodeCommand::Add { .. } | NodeCommand::Replace { .. } => {
                let options = PlanOptions {
                    only: Some(only.clone()),
                    replace: match args.command {
                        NodeCommand::Replace { .. } => only.clone(),
                        _ => BTreeSet::new(),
                    },
                    ..PlanOptions::default()
                };
                session
                    .converge(verb, |inventory, observed| {
                        plan(inventory, observed, &options)
                    })
                    .await
            }
        };
        if let (NodeCommand::Remove { name }, Ok(removed)) = (&args.command, &result)
            && removed.exit == Exit::Success
        {
            session.revoke_agent_tokens(vec![name.clone()]).await?;
        }
        session.release().await?;
        Ok(result?.exit)
    })
}
