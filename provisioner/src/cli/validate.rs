use serde_json::json;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

pub fn run(global: &GlobalArgs) -> anyhow::Result<Exit> {
    tracing::debug!(inventory = %global.inventory.display(), "validating");
    match load::inventory(global) {
        Some(inventory) => {
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
        None => Ok(Exit::Failure),
    }
}
