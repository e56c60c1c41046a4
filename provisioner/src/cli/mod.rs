//! The command line: global flags, one module per command. Commands parse
//! their arguments, call the library, and print; nothing else.

mod agent;
mod apply;
mod completions;
mod destroy;
mod drill;
pub mod global;
mod image;
mod load;
mod nightly;
mod node;
mod plan;
mod rebuild;
mod render;
mod runs;
mod schema;
mod secrets;
mod serve;
mod session;
mod status;
mod storage;
mod validate;

use clap::{CommandFactory, Parser, Subcommand};

use global::{Exit, GlobalArgs};

/// kiln: rebuild a homelab cluster from one inventory file.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the inventory: every error with its FILE:LINE:COL.
    Validate,
    /// Print the inventory's JSON Schema (draft-07), for editors.
    Schema,
    /// Show what a node gets from cloud-init: user-data, meta-data,
    /// network-config and the Proxmox keys kiln would send.
    Render(render::RenderArgs),
    /// What kiln keeps in the cluster's secret store: list, rotate, init, set.
    Secrets(secrets::SecretsArgs),
    /// What `kiln apply` would do, per node and per field.
    Plan(plan::PlanArgs),
    /// Make Proxmox match the inventory.
    Apply(apply::ApplyArgs),
    /// Destroy every VM kiln made for this cluster (asks for the cluster name unless --yes).
    Destroy(destroy::DestroyArgs),
    /// Destroy and create the cluster again, keeping its secrets; prints the time per phase.
    Rebuild(rebuild::RebuildArgs),
    /// Add, remove or replace one node.
    Node(node::NodeArgs),
    /// The journal's history: past runs, and one run's timeline and phase times.
    Runs(runs::RunsArgs),
    /// Golden images: build one offline, list the catalog and the cache.
    Image(image::ImageArgs),
    /// The collector: agents' reports in; node states, /metrics and a status page out.
    Serve(serve::ServeArgs),
    /// The nodes' health as the collector sees it.
    Status(status::StatusArgs),
    /// TrueNAS storage: check that every node really attaches it.
    Storage(storage::StorageArgs),
    /// The agents on the hosts: issue a report token.
    Agent(agent::AgentArgs),
    /// A disaster-recovery drill: break nodes on purpose, measure detection and recovery.
    Drill(drill::DrillArgs),
    /// Build an ephemeral copy of the cluster from a profile, verify it, tear it down; JUnit out.
    Nightly(nightly::NightlyArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Validate => validate::run(&cli.global),
        Command::Schema => schema::run(),
        Command::Completions { shell } => completions::run(shell, &mut Cli::command()),
        Command::Plan(args) => plan::run(&cli.global, &args),
        Command::Apply(args) => apply::run(&cli.global, &args),
        Command::Destroy(args) => destroy::run(&cli.global, &args),
        Command::Rebuild(args) => rebuild::run(&cli.global, &args),
        Command::Node(args) => node::run(&cli.global, &args),
        Command::Runs(args) => runs::run(&cli.global, &args),
        Command::Secrets(args) => secrets::run(&cli.global, &args),
        Command::Render(args) => render::run(&cli.global, &args),
        Command::Image(args) => image::run(&cli.global, &args),
        Command::Serve(args) => serve::run(&cli.global, &args),
        Command::Status(args) => status::run(&cli.global, &args),
        Command::Storage(args) => storage::run(&cli.global, &args),
        Command::Agent(args) => agent::run(&cli.global, &args),
        Command::Drill(args) => drill::run(&cli.global, &args),
        Command::Nightly(args) => nightly::run(&cli.global, &args),
    }
}
