use super::global::Exit;

/// Prints completions for `command` (kiln's whole command line).
pub fn run(shell: clap_complete::Shell, command: &mut clap::Command) -> anyhow::Result<Exit> {
    clap_complete::generate(shell, command, "kiln", &mut std::io::stdout());
    Ok(Exit::Success)
}
