//! `kiln agent …`: what concerns the agents on the hosts. `token NODE`
//! issues a token for a manual install.

use clap::{Args, Subcommand};
use kiln::collector::{TokenRegistry, default_db_path};
use secrecy::ExposeSecret;

use super::{Exit, GlobalArgs, load};

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Issue a new report token for NODE (for a host kiln cannot reach over
    /// SSH) and print it once; it replaces the node's previous token.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The node, as named in the inventory.
    pub node: String,
}

pub fn run(global: &GlobalArgs, args: &AgentArgs) -> anyhow::Result<Exit> {
    match &args.command {
        AgentCommand::Token(token) => issue_token(global, token),
    }
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
