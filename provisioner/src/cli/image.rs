//! `kiln image build|list|ensure`: the golden-image builder, the catalog,
//! and the templates on Proxmox.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln::engine::RunOutcome;
use kiln::templates::{
    EnsureContext, EnsureTimeouts, TemplateAction, TemplatePlan, desired_templates, ensure,
    observe_templates, plan_templates, resolve_images,
};
use kiln_images::{Cache, Recipe, catalog};
use serde_json::json;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;
use super::session::{Session, confirm_destruction, interrupt};

/// How long ensure waits for locks an interrupted run left on templates.
const LOCK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a golden image offline from Debian packages (needs root), or
    /// reuse the cached one; prints its path.
    Build {
        /// The recipe, as in the inventory's `images.<name>.golden.recipe`.
        recipe: String,
        /// Copy the image into this directory as `<recipe>.qcow2`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The catalog of cloud images and the cached golden images.
    List,
    /// Make the inventory's templates exist on Proxmox, one copy per PVE
    /// node: the image onto the node's `import` storage, a VM importing it,
    /// converted to a template. Golden images must be built first.
    Ensure {
        /// Replace kiln's templates made from another image (destroys them;
        /// asks unless --yes).
        #[arg(long)]
        replace: bool,
    },
}

pub fn run(global: &GlobalArgs, args: &ImageArgs) -> anyhow::Result<Exit> {
    let cache = Cache::default_location()?;
    match &args.command {
        ImageCommand::Ensure { replace } => return run_ensure(global, &cache, *replace),
        ImageCommand::Build { recipe, out } => {
            let recipe = Recipe::named(recipe)?;
            let image = kiln_images::build(&recipe, &cache, &mut |stage| {
                eprintln!("kiln image: {stage}");
            })?;
            let path = match out {
                Some(dir) => {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    let target = dir.join(format!("{}.qcow2", recipe.name));
                    std::fs::copy(&image.path, &target).with_context(|| {
                        format!("cannot copy the image to {}", target.display())
                    })?;
                    target
                }
                None => image.path,
            };
            println!("{}", path.display());
        }
        ImageCommand::List => {
            let cached = cache.list()?;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({
                        "catalog": catalog::CATALOG,
                        "golden": cached,
                        "cache_dir": cache.dir,
                    })
                ),
                OutputFormat::Text => {
                    println!("catalog (cloud images, verified by the published checksums):");
                    for image in catalog::CATALOG {
                        println!("  {:<13} {}", image.name, image.url);
                        println!("  {:<13} checksums: {}", "", image.checksum_url);
                    }
                    println!("golden images in {}:", cache.dir.display());
                    if cached.is_empty() {
                        println!("  (none; `kiln image build debian-12` makes one)");
                    }
                    for image in &cached {
                        println!(
                            "  {:<13} {:>6.0} MiB  {}  {}",
                            image.name,
                            image.file_bytes as f64 / 1_048_576.0,
                            &image.hash[..16],
                            image.path.display()
                        );
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}

fn run_ensure(global: &GlobalArgs, cache: &Cache, replace: bool) -> anyhow::Result<Exit> {
    load::runtime()?.block_on(async {
        let session = match Session::open(global, "image ensure").await? {
            Ok(session) => session,
            Err(exit) => return Ok(exit),
        };
        let result = ensure_templates(global, &session, cache, replace).await;
        session.release().await?;
        result
    })
}

async fn ensure_templates(
    global: &GlobalArgs,
    session: &Session<'_>,
    cache: &Cache,
    replace: bool,
) -> anyhow::Result<Exit> {
    let inventory = session.inventory();
    let cluster = inventory.cluster.name.as_str();
    let text = global.output == OutputFormat::Text;
    let desired = desired_templates(inventory);
    if desired.is_empty() {
        eprintln!("The inventory has no `templates`: nothing to ensure.");
        return Ok(Exit::Success);
    }
    let names: BTreeSet<String> = desired.iter().map(|wanted| wanted.image.clone()).collect();
    let images = match resolve_images(inventory, &names, cache).await {
        Ok(images) => images,
        Err(errors) => {
            for error in errors {
                eprintln!("kiln: {error}");
            }
            return Ok(Exit::Failure);
        }
    };
    let observe = || async {
        observe_templates(session.client(), cluster, &desired, LOCK_WAIT)
            .await
            .context("cannot read the VMs from Proxmox")
    };
    let plan = match plan_templates(cluster, &desired, &images, &observe().await?, replace) {
        Ok(plan) => plan,
        Err(errors) => {
            for error in errors {
                eprintln!("kiln: {error}");
            }
            return Ok(Exit::Failure);
        }
    };
    if text {
        eprint!("{}", plan_text(&plan));
    }
    let mut outcome = RunOutcome::Succeeded;
    if !plan.has_changes() {
        if text {
            eprintln!("Nothing to do (image ensure): the templates match the inventory.");
        }
    } else {
        if plan.is_destructive() && !global.yes && !confirm_destruction(cluster)? {
            eprintln!("Nothing changed.");
            return Ok(Exit::Failure);
        }
        let context = Arc::new(EnsureContext {
            client: session.client().clone(),
            cluster: cluster.to_owned(),
            bridge: inventory.network.bridge.clone(),
            vlan: inventory.network.vlan,
            pool: inventory
                .proxmox
                .as_ref()
                .and_then(|proxmox| proxmox.pool.clone()),
            run: uuid::Uuid::now_v7(),
            timeouts: EnsureTimeouts::default(),
        });
        let report = ensure(
            context,
            &plan,
            &images,
            session.label("image ensure"),
            session.sink(),
            interrupt(),
        )
        .await;
        for failure in &report.failures {
            eprintln!(
                "kiln: {} `{}` failed: {}",
                failure.node.as_deref().unwrap_or("cluster"),
                failure.step,
                failure.message
            );
        }
        outcome = report.outcome;
    }
    // The summary is what Proxmox has now, not what the run meant to do.
    let now = plan_templates(cluster, &desired, &images, &observe().await?, false).ok();
    let done = |label: &str| {
        now.as_ref().is_some_and(|now| {
            now.items
                .iter()
                .any(|item| item.label() == label && item.action == TemplateAction::Nothing)
        })
    };
    let all_done = plan.items.iter().all(|item| done(&item.label()));
    match global.output {
        OutputFormat::Json => {
            let templates: Vec<serde_json::Value> = plan
                .items
                .iter()
                .map(|item| {
                    json!({
                        "template": item.template,
                        "image": item.image,
                        "pve_node": item.pve_node,
                        "vmid": item.vmid,
                        "action": item.action,
                        "checksum": item.wanted,
                        "current": item.current,
                        "ok": done(&item.label()),
                    })
                })
                .collect();
            println!(
                "{}",
                json!({"event": "templates", "cluster": cluster, "templates": templates})
            );
        }
        OutputFormat::Text => {
            for item in &plan.items {
                let state = match (item.action, done(&item.label())) {
                    (TemplateAction::Nothing, _) => "unchanged",
                    (TemplateAction::Create, true) => "created",
                    (TemplateAction::Finish, true) => "converted to a template",
                    (TemplateAction::Replace, true) => "replaced",
                    (TemplateAction::Outdated, _) => {
                        "OUTDATED: made from another image; rerun with --replace"
                    }
                    (_, false) => "FAILED",
                };
                println!("{:<24} VMID {:<6} {state}", item.label(), item.vmid);
            }
        }
    }
    Ok(match outcome {
        RunOutcome::Interrupted => Exit::Interrupted,
        _ if all_done => Exit::Success,
        _ => Exit::Failure,
    })
}

/// The plan for people: one line per template copy.
fn plan_text(plan: &TemplatePlan) -> String {
    let short = |checksum: &str| {
        let (algorithm, hex) = checksum.split_once(':').unwrap_or(("", checksum));
        format!("{algorithm}:{}…", hex.get(..12).unwrap_or(hex))
    };
    let mut out = format!("Templates of cluster `{}`:\n", plan.cluster);
    for item in &plan.items {
        let what = match item.action {
            TemplateAction::Nothing => "nothing to do".to_owned(),
            TemplateAction::Create => format!(
                "create from image `{}` ({})",
                item.image,
                short(&item.wanted)
            ),
            TemplateAction::Finish => {
                "convert to a template (an earlier run stopped before)".to_owned()
            }
            TemplateAction::Replace | TemplateAction::Outdated => {
                let current = item
                    .current
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), short);
                let verb = if item.action == TemplateAction::Replace {
                    "replace"
                } else {
                    "outdated (needs --replace)"
                };
                format!(
                    "{verb}: {current} on {} → image `{}` ({})",
                    item.replaces_on.as_deref().unwrap_or(&item.pve_node),
                    item.image,
                    short(&item.wanted)
                )
            }
        };
        out.push_str(&format!(
            "  {:<24} VMID {:<6} {what}\n",
            item.label(),
            item.vmid
        ));
    }
    out
}
