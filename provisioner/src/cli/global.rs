//! What every command shares: the global flags and kiln's exit codes. It
//! depends on no command, so the commands, the session and the UI can all
//! use it without leaning on each other.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

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
