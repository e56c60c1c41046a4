//! What several commands start with: the inventory, validated, with every
//! error printed the way `kiln validate` prints it; and an async runtime.

use std::io::IsTerminal;

use anyhow::Context;
use kiln::secrets::ClusterSecrets;
use kiln_inventory::Inventory;
use serde_json::json;

use super::global::{GlobalArgs, OutputFormat};

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

/// The certificate fingerprint agents and `kiln status` pin for the
/// cluster's collector: the inventory's `agent.collector_fingerprint` (a
/// collector serving the user's own certificate), else the fingerprint of
/// the cluster's certificate in the secrets store (what `kiln serve` serves).
pub async fn collector_pin(
    inventory: &Inventory,
    secrets: &ClusterSecrets,
) -> anyhow::Result<kiln_tls::Fingerprint> {
    if let Some(pinned) = inventory
        .agent
        .as_ref()
        .and_then(|agent| agent.collector_fingerprint.as_ref())
    {
        let pinned = pinned
            .resolve()
            .map_err(|reason| anyhow::anyhow!("agent.collector_fingerprint: {reason}"))?;
        return Ok(kiln_tls::Fingerprint::from_bytes(pinned.0));
    }
    Ok(secrets
        .collector_tls(inventory)
        .await
        .context("the collector's certificate")?
        .fingerprint)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}
