//! `kiln status`: the node table from the collector, joined with the
//! inventory (role, PVE node, IP) and, when Proxmox answers, the VMIDs.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kiln::engine::{observe, proxmox_client};
use kiln::secrets::ClusterSecrets;
use kiln_agent::report::Status;
use kiln_collector::{NodeView, fetch_nodes, page};
use kiln_inventory::Inventory;
use kiln_secrets::Dirs;
use serde::Serialize;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw the table until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with `--watch`.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub every: u64,
    /// The collector's URL. Default: the inventory's `agent.collector`.
    #[arg(long)]
    pub collector: Option<String>,
    /// The collector certificate's SHA-256 fingerprint, as `kiln serve`
    /// prints it. Default: the inventory's `agent.collector_fingerprint`,
    /// else the cluster's certificate in the secrets store.
    #[arg(long)]
    pub collector_fingerprint: Option<kiln_tls::Fingerprint>,
}

/// One line of the table, and one object of `-o json`.
#[derive(Debug, Serialize)]
struct Row {
    node: String,
    role: &'static str,
    pve_node: Option<String>,
    vmid: Option<u32>,
    ip: String,
    state: String,
    last_report_age_secs: Option<f64>,
    /// `name (status): detail` of every check that is not ok.
    failing_checks: Vec<String>,
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const PROXMOX_TIMEOUT: Duration = Duration::from_secs(15);

pub fn run(global: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let url = collector_url(&inventory, args)?;
    load::runtime()?.block_on(async {
        let trust = kiln_tls::Trust::Pin(pin(&inventory, args).await?);
        let (vmids, note) = vmids(&inventory).await;
        if let Some(note) = &note {
            eprintln!("kiln: VMIDs shown as `-`: {note}");
        }
        loop {
            let listing = fetch_nodes(&url, &trust, FETCH_TIMEOUT).await?;
            let rows = rows(&inventory, &vmids, &listing.nodes);
            print(global.output, args.watch, &url, &rows);
            if !args.watch {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<(), anyhow::Error>(()),
                () = tokio::time::sleep(Duration::from_secs(args.every)) => {}
            }
        }
    })?;
    Ok(Exit::Success)
}

fn collector_url(inventory: &Inventory, args: &StatusArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.collector {
        return Ok(url.clone());
    }
    let agent = inventory
        .agent
        .as_ref()
        .context("the inventory has no `agent` section: pass --collector URL")?;
    let url = agent
        .collector
        .resolve()
        .map_err(|reason| anyhow::anyhow!("`agent.collector`: {reason}"))?;
    Ok(url.as_str().to_owned())
}

async fn pin(inventory: &Inventory, args: &StatusArgs) -> anyhow::Result<kiln_tls::Fingerprint> {
    if let Some(fingerprint) = args.collector_fingerprint {
        return Ok(fingerprint);
    }
    let secrets = ClusterSecrets::open(inventory, &Dirs::from_env()?).await?;
    load::collector_pin(inventory, &secrets).await
}

/// VMIDs by node name, or why there are none.
async fn vmids(inventory: &Inventory) -> (BTreeMap<String, u32>, Option<String>) {
    if inventory.proxmox.is_none() {
        return (BTreeMap::new(), None);
    }
    let read = async {
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(inventory, &dirs).await?;
        let client = proxmox_client(inventory, &secrets).await?;
        let observed = observe(&client, inventory).await?;
        anyhow::Ok(observed)
    };
    match tokio::time::timeout(PROXMOX_TIMEOUT, read).await {
        Ok(Ok(observed)) => {
            let vmids = observed
                .into_iter()
                .filter_map(|vm| {
                    let node = vm
                        .config
                        .as_ref()
                        .and_then(|config| config.marker.as_ref())
                        .map_or_else(|| vm.name.clone(), |marker| marker.node.clone());
                    (!vm.template).then_some((node, vm.vmid))
                })
                .collect();
            (vmids, None)
        }
        Ok(Err(error)) => (BTreeMap::new(), Some(format!("Proxmox: {error:#}"))),
        Err(_) => (
            BTreeMap::new(),
            Some(format!(
                "Proxmox did not answer within {}s",
                PROXMOX_TIMEOUT.as_secs()
            )),
        ),
    }
}

fn rows(inventory: &Inventory, vmids: &BTreeMap<String, u32>, listing: &[NodeView]) -> Vec<Row> {
    let cluster = inventory.cluster.name.as_str();
    inventory
        .nodes
        .iter()
        .map(|node| {
            let name = node.name.as_str();
            let seen = listing
                .iter()
                .find(|view| view.cluster == cluster && view.node == name);
            Row {
                node: name.to_owned(),
                role: node.role.as_str(),
                pve_node: inventory
                    .vm_spec(node)
                    .map(|spec| spec.pve_node.as_str().to_owned()),
                vmid: vmids.get(name).copied(),
                ip: node.ip.to_string(),
                state: seen.map_or_else(|| "no token".to_owned(), |view| view.state.to_string()),
                last_report_age_secs: seen.and_then(|view| view.last_report_age_secs),
                failing_checks: seen
                    .map(|view| {
                        view.checks
                            .iter()
                            .filter(|check| check.status != Status::Ok)
                            .map(|check| {
                                format!(
                                    "{} ({}): {}",
                                    check.name,
                                    check.status.as_str(),
                                    check.detail
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn print(output: OutputFormat, watch: bool, url: &str, rows: &[Row]) {
    match output {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_owned())
            );
        }
        OutputFormat::Text => {
            if watch && std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", table(url, rows));
        }
    }
}

fn table(url: &str, rows: &[Row]) -> String {
    let header = [
        "NODE",
        "ROLE",
        "PVE NODE",
        "VMID",
        "IP",
        "STATE",
        "LAST REPORT",
        "FAILING CHECKS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.node.clone(),
                row.role.to_owned(),
                row.pve_node.clone().unwrap_or_else(|| "-".to_owned()),
                row.vmid
                    .map_or_else(|| "-".to_owned(), |vmid| vmid.to_string()),
                row.ip.clone(),
                row.state.clone(),
                page::age(row.last_report_age_secs),
                if row.failing_checks.is_empty() {
                    "-".to_owned()
                } else {
                    row.failing_checks.join("; ")
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = format!("collector {url}\n");
    let mut push = |line: &[String]| {
        let padded: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    push(&header.map(str::to_owned));
    for line in &cells {
        push(line);
    }
    text
}
