//! `kiln agent …`: what concerns the agents on the hosts. `install [NODE..]`
//! (re)deploys them over SSH; `token NODE` issues a token for a manual install.

use std::collections::BTreeSet;

use clap::{Args, Subcommand};
use kiln_collector::{TokenRegistry, default_db_path};
use secrecy::ExposeSecret;

use kiln::plan::{PlanOptions, plan};

use super::global::{Exit, GlobalArgs};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// (Re)deploy the agent to NODEs (default: every node) over SSH and wait
    /// until each reports healthy. Like `kiln apply --only NODE..`: a node
    /// that differs from the inventory is converged first.
    Install(InstallArgs),
    /// Issue a new report token for NODE (for a host kiln cannot reach over
    /// SSH) and print it once; it replaces the node's previous token.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Nodes, as named in the inventory (default: all).
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The node, as named in the inventory.
    pub node: String,
}

pub fn run(global: &GlobalArgs, args: &AgentArgs) -> anyhow::Result<Exit> {
    match &args.command {
        AgentCommand::Install(install) => install_agents(global, install),
        AgentCommand::Token(token) => issue_token(global, token),
    }
}

fn install_agents(global: &GlobalArgs, args: &InstallArgs) -> anyhow::Result<Exit> {
    let only: Option<BTreeSet<String>> =
        (!args.nodes.is_empty()).then(|| args.nodes.iter().cloned().collect());
    load::runtime()?.block_on(async {
        let session = match Session::open(global, "agent install").await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let inventory = session.inventory();
        let problem = if inventory.ssh.is_none() || inventory.agent.is_none() {
            Some("the inventory needs `ssh` and `agent` sections to deploy agents".to_owned())
        } else {
            only.iter()
                .flatten()
                .find(|name| {
                    !inventory
                        .nodes
                        .iter()
                        .any(|node| node.name.as_str() == name.as_str())
                })
                .map(|name| format!("no node `{name}` in the inventory"))
        };
        let result = match problem {
            Some(problem) => Err(anyhow::anyhow!("{}: {problem}", global.inventory.display())),
            None => {
                let options = PlanOptions {
                    only: only.clone(),
                    ..PlanOptions::default()
                };
                session
                    .converge("agent install", |inventory, observed| {
                        plan(inventory, observed, &options)
                    })
                    .await
            }
        };
        session.release().await?;
        Ok(result?.exit)
    })
}

fn issue_token(global: &GlobalArgs, args: &TokenArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    if !inventory
        .nodes
        .iter()
        .any(|node| node.name.as_str() == args.node)
    {
        anyhow::bail!(
            "{}: no node `{}` in the inventory",
            global.inventory.display(),
            args.node
        );
    }
    let registry = TokenRegistry::open(&default_db_path()?)?;
    let token = registry.issue(inventory.cluster.name.as_str(), &args.node)?;
    // The token goes to stdout alone, so it can be piped; the note goes to stderr.
    println!("{}", token.expose_secret());
    eprintln!(
        "kiln: issued a new token for `{}` (shown once; it replaces any earlier one). \
         Put it in the agent's token file (mode 0600).",
        args.node
    );
    Ok(Exit::Success)
}
