//! What several commands start with: the inventory, validated, with every
//! error printed the way `kiln validate` prints it; and an async runtime.

use std::io::IsTerminal;

use anyhow::Context;
use kiln_inventory::Inventory;
use serde_json::json;

use super::{GlobalArgs, OutputFormat};

/// The validated inventory, or `None` after printing every error.
pub fn inventory(global: &GlobalArgs) -> Option<Inventory> {
    match kiln_inventory::load(&global.inventory) {
        Ok(inventory) => Some(inventory),
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
                    let color =
                        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                    eprint!("{}", error.render(color));
                    let count = error.len();
                    eprintln!(
                        "{}: {count} error{} found",
                        global.inventory.display(),
                        if count == 1 { "" } else { "s" }
                    );
                }
            }
            None
        }
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}
