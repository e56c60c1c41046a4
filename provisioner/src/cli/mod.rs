//! The command line: global flags, one module per command. Commands parse
//! their arguments, call the library, and print; nothing else.

mod agent;
mod apply;
mod completions;
mod destroy;
mod drill;
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
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kiln: rebuild a homelab cluster from one inventory file.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The inventory file.
    #[arg(
        short,
        long,
        global = true,
        env = "KILN_INVENTORY",
        default_value = "kiln.yaml"
    )]
    pub inventory: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// How much to log (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, global = true, env = "KILN_LOG", default_value = "warn")]
    pub log_level: String,
    /// Log line format, on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Live progress: `auto` shows it on a terminal only.
    #[arg(long, global = true, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
    /// Answer yes to confirmations (destroying VMs, drills).
    #[arg(long, global = true)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
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

/// kiln's exit codes, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// A failure, or invalid input.
    Failure,
    /// `plan --detailed-exitcode`: changes are pending.
    ChangesPending,
    /// Another run holds the cluster's lock.
    LockHeld,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        let code: u8 = match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::ChangesPending => 2,
            Exit::LockHeld => 3,
            Exit::Interrupted => 130,
        };
        ExitCode::from(code)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Validate => validate::run(&cli.global),
        Command::Schema => schema::run(),
        Command::Completions { shell } => completions::run(shell),
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
        Command::Agent(args) => agent::run(&cli.global, &args),
        Command::Drill(args) => drill::run(&cli.global, &args),
        Command::Nightly(args) => nightly::run(&cli.global, &args),
    }
}
