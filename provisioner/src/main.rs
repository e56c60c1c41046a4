//! The `kiln` binary: parses the command line, runs the command, prints.

mod cli;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // reqwest is built without a TLS provider of its own: ring is the one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    if let Err(error) = ui::logging::init(&args.global) {
        eprintln!("kiln: {error:#}");
        return cli::global::Exit::Failure.into();
    }
    match cli::run(args) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("kiln: {error:#}");
            cli::global::Exit::Failure.into()
        }
    }
}
