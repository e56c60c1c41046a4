//! `cargo xtask`: the project's own set-up and checks.
//!
//! `cargo xtask test` is the one gate CI runs: it installs what the tests
//! need (saying what and why), then runs fmt, clippy, nextest and doctests.
//! `cargo xtask bench` prints the performance figures; `cargo xtask demo`
//! shows kiln's main job on the built-in lab.

mod command;
mod demo;
mod peers;
mod setup;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "kiln's set-up and checks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what the tests need, then fmt, clippy, nextest and doctests.
    Test {
        /// Arguments passed on to `cargo nextest run` (e.g. a filter).
        #[arg(last = true)]
        nextest_args: Vec<String>,
    },
    /// Install what the tests need, and nothing else.
    Setup,
    /// Measure and print the performance figures (optimized build).
    Bench,
    /// Build what the demo and the real-guest tests run: kiln, kiln-lab,
    /// kiln-agent (debug), and the optimized kiln-agent that goes onto guests.
    Build,
    /// Obtain the real peers pinned in xtask/peers.toml (K3s, talosctl, Flux's
    /// controllers, sops) into ~/.cache/kiln/peers; not part of `test` or `setup` yet.
    Peers {
        /// Only these peers (default: all).
        names: Vec<String>,
        /// Try official release assets whose sha256 is pinned before building.
        #[arg(long)]
        releases: bool,
        /// Download the modules the builds need, and build nothing.
        #[arg(long)]
        fetch_only: bool,
    },
    /// kiln's main job on the built-in lab: rebuild, status, a drill (root).
    Demo {
        /// Remove everything the demo started and made.
        #[arg(long)]
        down: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Test { nextest_args } => test::run_all(&nextest_args),
        Task::Setup => setup::ensure_all().map(drop),
        Task::Demo { down } => demo::run_demo(down),
        Task::Bench => bench(),
        Task::Build => build_binaries(),
        Task::Peers {
            names,
            releases,
            fetch_only,
        } => peers::obtain_all(&peers::Options {
            names,
            releases,
            fetch_only,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every benchmark: the engine's and the collector's, the agent's cycle
/// cost, then three real guests from clone to SSH-ready on the qemu lab.
fn bench() -> anyhow::Result<()> {
    command::run("cargo", &["bench", "-p", "kiln", "--bench", "engine"], &[])?;
    command::run(
        "cargo",
        &["bench", "-p", "kiln-collector", "--bench", "collector"],
        &[],
    )?;
    command::run(
        "cargo",
        &["bench", "-p", "kiln-agent", "--bench", "cycle"],
        &[],
    )?;
    build_binaries()?;
    command::run(
        "cargo",
        &["bench", "-p", "kiln-e2e", "--bench", "guests"],
        &[],
    )
}

/// The binaries the demo, the guest bench and the real-guest tests run. The
/// agent is also built optimized: it is uploaded into every guest, and the
/// release binary is a fifth of the debug one's size.
pub fn build_binaries() -> anyhow::Result<()> {
    command::run(
        "cargo",
        &["build", "-p", "kiln", "-p", "kiln-lab", "-p", "kiln-agent"],
        &[],
    )?;
    command::run("cargo", &["build", "--release", "-p", "kiln-agent"], &[])
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
