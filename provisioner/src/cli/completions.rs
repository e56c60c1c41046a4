use clap::CommandFactory;

use super::{Cli, Exit};

pub fn run(shell: clap_complete::Shell) -> anyhow::Result<Exit> {
    clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
    Ok(Exit::Success)
}
