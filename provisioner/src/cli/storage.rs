//! `kiln storage check`: from each node, a real iSCSI login and NFS mount
//! on the cluster's TrueNAS, written and read back; a table of steps and
//! times, or JSON.

use std::collections::BTreeSet;
use std::fmt::Write;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use kiln::engine::{HostAccess, check_nodes, first_failure};
use kiln::plan::desired_vms;
use kiln::secrets::ClusterSecrets;
use kiln::storage::{NodeCheck, ProbeOutcome, connect, prepared_ids};
use kiln_secrets::Dirs;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// From each node: discover, log in, mkfs, write and read back an iSCSI
    /// test LUN, and mount, write and read back an NFS test export — made
    /// on TrueNAS for the check and removed after it. Exit 1 names the
    /// node and step that failed.
    Check {
        /// Only these nodes (default: every VM node).
        nodes: Vec<String>,
    },
}

pub fn run(global: &GlobalArgs, args: &StorageArgs) -> anyhow::Result<Exit> {
    let StorageCommand::Check { nodes } = &args.command;
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let checks = load::runtime()?.block_on(async {
        let Some(ssh) = &inventory.ssh else {
            bail!(
                "`kiln storage check` logs in to the nodes: the inventory needs an `ssh` section"
            );
        };
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(&inventory, &dirs).await?;
        let setup = connect(&inventory, &secrets)
            .await?
            .context("the inventory has no `storage` section")?;
        let ids = prepared_ids(&setup).await?;
        let pair = secrets.ssh_keypair(&inventory).await?;
        let cluster = inventory.cluster.name.as_str();
        let hosts = HostAccess::new(ssh, cluster, pair.private_key, &dirs.state);
        let mut wanted = desired_vms(&inventory);
        if !nodes.is_empty() {
            let known: BTreeSet<&str> = wanted.iter().map(|vm| vm.node.as_str()).collect();
            let unknown: Vec<&str> = nodes
                .iter()
                .map(String::as_str)
                .filter(|node| !known.contains(node))
                .collect();
            if !unknown.is_empty() {
                bail!("not VM nodes of the inventory: {}", unknown.join(", "));
            }
            wanted.retain(|vm| nodes.contains(&vm.node));
        }
        Ok(check_nodes(&setup, &ids, &hosts, &wanted).await)
    })?;
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&checks)?),
        OutputFormat::Text => print!("{}", table(&checks)),
    }
    for check in &checks {
        if let Some(failure) = first_failure(check) {
            eprintln!("kiln: {failure}");
        }
    }
    Ok(if checks.iter().all(NodeCheck::passed) {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn table(checks: &[NodeCheck]) -> String {
    let width = checks
        .iter()
        .map(|check| check.node.len())
        .max()
        .unwrap_or(0)
        .max("NODE".len());
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:<24}  {:<24}", "NODE", "ISCSI", "NFS");
    for check in checks {
        let _ = writeln!(
            out,
            "{:<width$}  {:<24}  {:<24}",
            check.node,
            cell(check.iscsi.as_ref()),
            cell(check.nfs.as_ref())
        );
        for (what, outcome) in [("iSCSI", &check.iscsi), ("NFS", &check.nfs)] {
            if let Some(ProbeOutcome::Passed { steps, .. }) = outcome {
                let steps: Vec<String> = steps
                    .iter()
                    .map(|step| format!("{} {}ms", step.name, step.took.as_millis()))
                    .collect();
                let _ = writeln!(out, "{:width$}    {what}: {}", "", steps.join(", "));
            }
        }
    }
    out
}

fn cell(outcome: Option<&ProbeOutcome>) -> String {
    match outcome {
        None => "-".to_owned(),
        Some(ProbeOutcome::Passed { took, .. }) => format!("ok ({:.1}s)", took.as_secs_f64()),
        Some(ProbeOutcome::Failed { step, .. }) => format!("FAILED at {step}"),
    }
}
