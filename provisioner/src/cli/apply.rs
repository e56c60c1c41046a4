//! `kiln apply`: make Proxmox match the inventory.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use kiln::engine::{
    Context, EventSink, RunLabel, RunOutcome, Timeouts, execute, observe, proxmox_client,
};
use kiln::plan::{PlanOptions, plan};
use kiln::secrets::{
    ClusterSecrets, Dirs, LockError, LockRequest, SecretStore, cluster_ssh_keypair,
};
use kiln_cloud_init::SshPublicKey;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{Exit, GlobalArgs, OutputFormat, load};
use crate::ui::{plan_view, progress};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Also destroy kiln's VMs of this cluster that the inventory no longer lists.
    #[arg(long)]
    pub prune: bool,
    /// Only these nodes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &ApplyArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let inventory_hash = hex::encode(Sha256::digest(
        std::fs::read(&global.inventory)
            .with_context(|| format!("cannot read {}", global.inventory.display()))?,
    ));
    let inventory = Arc::new(inventory);
    load::runtime()?.block_on(async {
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(&inventory, &dirs).await?;
        let request = LockRequest::new(inventory.cluster.name.as_str(), "kiln apply");
        let lock = match secrets.store().lock(request).await {
            Ok(lock) => lock,
            Err(error @ LockError::Held { .. }) => {
                eprintln!("kiln: {error}");
                return Ok(Exit::LockHeld);
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(stale) = lock.taken_over() {
            eprintln!(
                "warning: took over a stale lock of run {} ({}@{}, last renewed {})",
                stale.run_id, stale.user, stale.host, stale.renewed
            );
        }
        let holder = lock.holder().clone();
        let result = async {
            let client = proxmox_client(&inventory, &secrets).await?;
            let observed = observe(&client, inventory.cluster.name.as_str())
                .await
                .context("cannot read the VMs from Proxmox")?;
            let options = PlanOptions {
                prune: args.prune,
                only: (!args.only.is_empty()).then(|| args.only.iter().cloned().collect::<BTreeSet<_>>()),
            };
            let plan = match plan(&inventory, &observed, &options) {
                Ok(plan) => plan,
                Err(errors) => {
                    for error in &errors {
                        eprintln!("kiln: {error}");
                    }
                    return Ok(Exit::Failure);
                }
            };
            if global.output == OutputFormat::Text {
                eprint!("{}", plan_view::text(&plan));
            }
            if !plan.has_changes() {
                if global.output == OutputFormat::Text {
                    eprintln!("Nothing to do: Proxmox matches the inventory.");
                }
                return Ok(Exit::Success);
            }
            if plan.is_destructive() && !global.yes && !confirm_destruction(inventory.cluster.name.as_str())? {
                eprintln!("Nothing changed.");
                return Ok(Exit::Failure);
            }
            let authorized_keys = match &inventory.ssh {
                Some(_) => {
                    let pair = cluster_ssh_keypair(secrets.store(), &inventory).await?;
                    vec![pair.public_key.parse::<SshPublicKey>()?]
                }
                None => Vec::new(),
            };
            let run = uuid::Uuid::parse_str(&holder.run_id).unwrap_or_else(|_| uuid::Uuid::now_v7());
            let context = Arc::new(Context {
                client,
                inventory: inventory.clone(),
                run,
                authorized_keys,
                timeouts: Timeouts::default(),
            });
            let sink: Arc<dyn EventSink> = match global.output {
                OutputFormat::Json => Arc::new(progress::JsonEvents),
                OutputFormat::Text => Arc::new(progress::PlainLines::new()),
            };
            let (interrupt, interrupted) = watch::channel(false);
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("kiln: interrupted — letting running Proxmox tasks finish, starting nothing new");
                    let _ = interrupt.send(true);
                }
            });
            let label = RunLabel {
                command: "apply".to_owned(),
                inventory_hash,
                operator: format!("{}@{}", holder.user, holder.host),
            };
            let report = execute(context, &plan, label, sink, interrupted).await;
            for failure in &report.failures {
                eprintln!(
                    "kiln: {} `{}` failed: {}",
                    failure.node.as_deref().unwrap_or("cluster"),
                    failure.step,
                    failure.message
                );
            }
            Ok(match report.outcome {
                RunOutcome::Succeeded => Exit::Success,
                RunOutcome::Failed => Exit::Failure,
                RunOutcome::Interrupted => Exit::Interrupted,
            })
        }
        .await;
        lock.release().await?;
        result
    })
}

/// Asks for the cluster's name before VMs are destroyed; off a terminal
/// there is no one to ask, so only `--yes` proceeds.
fn confirm_destruction(cluster: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "kiln: this plan destroys VMs and there is no terminal to confirm it: rerun with --yes"
        );
        return Ok(false);
    }
    eprint!("This plan destroys VMs. Type the cluster name (`{cluster}`) to go on: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == cluster)
}
