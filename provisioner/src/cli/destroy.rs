//! `kiln destroy`: remove every VM kiln made for this cluster, and nothing else.

use clap::Args;
use kiln::plan::destroy_plan;

use super::global::{Exit, GlobalArgs};
use super::load;
use super::session::Session;

#[derive(Debug, Args)]
pub struct DestroyArgs {}

pub fn run(global: &GlobalArgs, _args: &DestroyArgs) -> anyhow::Result<Exit> {
    load::runtime()?.block_on(async {
        let session = match Session::open(global, "destroy").await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let result = session
            .converge("destroy", |inventory, observed| {
                destroy_plan(inventory, observed, None)
            })
            .await;
        if let Ok(destroyed) = &result
            && destroyed.exit == Exit::Success
        {
            let nodes = session
                .inventory()
                .nodes
                .iter()
                .map(|node| node.name.to_string())
                .collect();
            session.revoke_agent_tokens(nodes).await?;
        }
        session.release().await?;
        Ok(result?.exit)
    })
}
