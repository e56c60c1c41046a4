//! `kiln-agent`: `run` reports every interval; `check` prints one snapshot and sends nothing.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kiln_agent::agent::{self, Agent};
use kiln_agent::checks::Host;
use kiln_agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use kiln_agent::report::{Report, Status};

#[derive(Debug, Parser)]
#[command(name = "kiln-agent", version, about = "kiln's per-host health agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report to the collector every interval until stopped (SIGTERM, Ctrl-C).
    Run {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Print one snapshot without sending it. Exits 2 when a check fails.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Exit status of `check` when at least one check fails (1 is a usage or config error).
const CHECK_FAILED: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kiln-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Run { config } => {
            let config = AgentConfig::load(&config)?;
            runtime.block_on(run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, output } => {
            let config = AgentConfig::load(&config)?;
            // A check is never sent, so it takes no sequence number: it carries 0.
            let report = runtime.block_on(agent::snapshot(&config, &Host::real(), 0));
            print_report(&report, output)?;
            Ok(if report.overall() == Status::Fail {
                ExitCode::from(CHECK_FAILED)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn run(config: AgentConfig) -> anyhow::Result<()> {
    tracing::info!(
        node = %config.node,
        cluster = %config.cluster,
        collector = %config.collector.url,
        interval_secs = config.interval_secs,
        "kiln-agent {} reporting",
        env!("CARGO_PKG_VERSION")
    );
    let agent = Agent::new(config, Host::real())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    agent.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_report(report: &Report, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Output::Text => {
            println!(
                "{} in cluster {}: {}",
                report.node,
                report.cluster,
                report.overall().as_str()
            );
            let width = report
                .checks
                .iter()
                .map(|c| c.name.len())
                .max()
                .unwrap_or(0);
            for check in &report.checks {
                println!(
                    "{:<4}  {:<width$}  {}",
                    check.status.as_str(),
                    check.name,
                    check.detail
                );
            }
        }
    }
    Ok(())
}

/// Plain lines on stderr; journald adds its own timestamps, so none are printed under it.
fn init_logging() {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_max_level(tracing::Level::INFO);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
