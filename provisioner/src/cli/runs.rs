//! `kiln runs`: the journal's history of runs, and one run in detail.

use clap::{Args, Subcommand};
use kiln_journal::History;
use kiln_secrets::Dirs;

use super::global::{Exit, GlobalArgs, OutputFormat};
use crate::ui::runs_view;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Only the runs of this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// How many runs to list, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: its per-node timeline and the time per phase.
    Show {
        /// The run's id, or a prefix only it has (as `kiln runs` prints it).
        id: String,
    },
}

pub fn run(global: &GlobalArgs, args: &RunsArgs) -> anyhow::Result<Exit> {
    let history = History::open(&Dirs::from_env()?)?;
    match &args.command {
        None => {
            let runs = history.runs(
                args.cluster.as_deref(),
                usize::try_from(args.limit).unwrap_or(usize::MAX),
            )?;
            match global.output {
                OutputFormat::Json => println!("{}", runs_view::list_json(history.path(), &runs)),
                OutputFormat::Text => print!(
                    "{}",
                    runs_view::list_text(history.path(), args.cluster.as_deref(), &runs)
                ),
            }
        }
        Some(RunsCommand::Show { id }) => {
            let detail = history.run(id)?;
            match global.output {
                OutputFormat::Json => {
                    println!("{}", runs_view::detail_json(history.path(), &detail));
                }
                OutputFormat::Text => print!("{}", runs_view::detail_text(&detail)),
            }
        }
    }
    Ok(Exit::Success)
}
