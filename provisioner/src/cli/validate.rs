use std::io::IsTerminal;

use serde_json::json;

use super::{Exit, GlobalArgs, OutputFormat};

pub fn run(global: &GlobalArgs) -> anyhow::Result<Exit> {
    tracing::debug!(inventory = %global.inventory.display(), "validating");
    match kiln_inventory::load(&global.inventory) {
        Ok(inventory) => {
            let vms = inventory.nodes.iter().filter(|node| node.is_vm()).count();
            let bare_metal = inventory.nodes.len() - vms;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    json!({
                        "valid": true,
                        "file": global.inventory.display().to_string(),
                        "cluster": inventory.cluster.name.as_str(),
                        "distribution": inventory.cluster.distribution.as_str(),
                        "nodes": {"vms": vms, "baremetal": bare_metal},
                    })
                ),
                OutputFormat::Text => println!(
                    "{}: valid — cluster `{}` ({}), {vms} VM{} and {bare_metal} bare-metal node{}",
                    global.inventory.display(),
                    inventory.cluster.name,
                    inventory.cluster.distribution.as_str(),
                    if vms == 1 { "" } else { "s" },
                    if bare_metal == 1 { "" } else { "s" },
                ),
            }
            Ok(Exit::Success)
        }
        Err(error) => {
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    json!({
                        "valid": false,
                        "file": global.inventory.display().to_string(),
                        "errors": error.located(),
                    })
                ),
                OutputFormat::Text => {
                    let stderr = std::io::stderr();
                    let color = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none();
                    eprint!("{}", error.render(color));
                    let count = error.len();
                    eprintln!(
                        "{}: {count} error{} found",
                        global.inventory.display(),
                        if count == 1 { "" } else { "s" }
                    );
                }
            }
            Ok(Exit::Failure)
        }
    }
}
