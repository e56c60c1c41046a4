//! `kiln secrets list|rotate|init|set`: what kiln keeps in the cluster's
//! store. Never prints a value.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kiln::secrets::{ClusterSecrets, cluster_names};
use kiln_inventory::Inventory;
use kiln_inventory::values::SecretRef;
use kiln_secrets::generated::{self, Generated};
use kiln_secrets::vault::setup::{MountState, ensure_kv2_mount, policy_hcl};
use kiln_secrets::{Cas, Dirs, LockError, LockRequest, SecretStore, Store, file::single_value};
use secrecy::SecretString;
use serde_json::json;
use zeroize::Zeroizing;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// What the store holds and what the inventory references: names,
    /// locations, versions and dates, never values.
    List,
    /// Replace a generated secret (generated/ssh/USER, generated/agent/NODE,
    /// generated/collector/tls, generated/k3s/token) with a new one; says
    /// what that implies first.
    Rotate {
        /// The entry, as `kiln secrets list` names it.
        name: String,
    },
    /// Prepare the store: the age identity and the store file, or the Vault
    /// KV v2 mount (if the token may) and the policy kiln needs.
    Init,
    /// Store a value for a `file:NAME` reference, read from standard input.
    Set {
        /// The name after `file:` in the inventory.
        name: String,
    },
}

pub fn run(global: &GlobalArgs, args: &SecretsArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let runtime = load::runtime()?;
    runtime.block_on(async {
        let dirs = Dirs::from_env()?;
        let secrets = ClusterSecrets::open(&inventory, &dirs).await?;
        match &args.command {
            SecretsCommand::List => list(global, &inventory, &secrets).await,
            SecretsCommand::Rotate { name } => rotate(global, &inventory, &secrets, name).await,
            SecretsCommand::Init => init(global, &inventory, &secrets).await,
            SecretsCommand::Set { name } => set(global, &secrets, name).await,
        }
    })
}

async fn list(
    global: &GlobalArgs,
    inventory: &Inventory,
    secrets: &ClusterSecrets,
) -> anyhow::Result<Exit> {
    let store = secrets.store();
    let mut entries = store.list().await?;
    if let Store::Vault(_) = store {
        // `file:` references read the file store even with Vault as backend.
        entries.extend(secrets.file_store().list().await?);
    }
    let references = inventory.secret_references();
    match global.output {
        OutputFormat::Json => {
            let references: Vec<_> = references
                .iter()
                .map(|used| {
                    json!({"path": used.path.to_string(), "reference": used.reference.to_string()})
                })
                .collect();
            println!(
                "{}",
                json!({
                    "cluster": secrets.cluster(),
                    "store": store.describe(),
                    "entries": entries,
                    "references": references,
                })
            );
        }
        OutputFormat::Text => {
            println!("Store: {}", store.describe());
            if entries.is_empty() {
                println!("  (no entries yet: kiln generates them on first use)");
            } else {
                let width = entries
                    .iter()
                    .map(|e| e.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!(
                    "  {:width$}  VERSION  UPDATED               LOCATION",
                    "NAME"
                );
                for entry in &entries {
                    let updated = entry
                        .updated
                        .map(|time| humantime::format_rfc3339_seconds(time).to_string())
                        .unwrap_or_else(|| "-".to_owned());
                    println!(
                        "  {:width$}  {:<7}  {updated:<20}  {}",
                        entry.name, entry.version, entry.location
                    );
                }
            }
            if !references.is_empty() {
                println!("References in {}:", global.inventory.display());
                for used in &references {
                    println!("  {}  →  {}", used.path, used.reference);
                }
            }
        }
    }
    Ok(Exit::Success)
}

async fn rotate(
    global: &GlobalArgs,
    inventory: &Inventory,
    secrets: &ClusterSecrets,
    name: &str,
) -> anyhow::Result<Exit> {
    let Some(kind) = Generated::of(name) else {
        bail!("`{name}` is not a secret kiln generates; change it with `kiln secrets set {name}`");
    };
    eprintln!("Rotating `{name}` in {}.", secrets.store().describe());
    eprintln!("What this implies: {}", kind.implications());
    if !global.yes && !confirm(&format!("Rotate `{name}`? [y/N] "))? {
        eprintln!("Nothing changed.");
        return Ok(Exit::Failure);
    }
    let store = secrets.store();
    let request = LockRequest::new(secrets.cluster(), &format!("kiln secrets rotate {name}"));
    let lock = match store.lock(request).await {
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
    // Only TrueNAS can make a new CSI key; every other entry kiln makes itself.
    let rotated = match kind {
        Generated::TruenasCsiKey => rotate_on_truenas(inventory, secrets).await,
        _ => generated::rotate(store, &cluster_names(inventory), name)
            .await
            .map_err(anyhow::Error::from),
    };
    let released = lock.release().await;
    let version = rotated?;
    released?;
    tracing::info!(entry = name, version, store = %store.describe(), "rotated a generated secret");
    match global.output {
        OutputFormat::Json => println!("{}", json!({"rotated": name, "version": version})),
        OutputFormat::Text => println!("Rotated `{name}`: now version {version}."),
    }
    Ok(Exit::Success)
}

async fn rotate_on_truenas(inventory: &Inventory, secrets: &ClusterSecrets) -> anyhow::Result<u64> {
    let setup = kiln::storage::connect(inventory, secrets)
        .await?
        .context("the inventory has no `storage` section: there is no CSI key to rotate")?;
    Ok(kiln::storage::rotate_csi_key(&setup).await?)
}

/// Asks on the terminal; without one, only `--yes` can confirm.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not confirmed: standard input is not a terminal; pass --yes to rotate");
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

async fn init(
    global: &GlobalArgs,
    inventory: &Inventory,
    secrets: &ClusterSecrets,
) -> anyhow::Result<Exit> {
    match secrets.store() {
        Store::File(store) => {
            let report = store.init().await?;
            match global.output {
                OutputFormat::Json => println!("{}", serde_json::to_string(&report)?),
                OutputFormat::Text => {
                    let state = |created| if created { "created" } else { "already there" };
                    println!(
                        "Identity: {} ({})",
                        report.identity.display(),
                        state(report.identity_created)
                    );
                    println!("  public key: {}", report.public_key);
                    println!("  Back it up: without it the store cannot be read.");
                    println!(
                        "Store:    {} ({})",
                        report.store.display(),
                        state(report.store_created)
                    );
                }
            }
        }
        Store::Vault(store) => {
            let mount = ensure_kv2_mount(store.client(), store.mount()).await?;
            let extra: Vec<String> = inventory
                .secret_references()
                .iter()
                .filter_map(|used| match &used.reference {
                    SecretRef::Vault { mount, path, .. } => Some(format!("{mount}/data/{path}")),
                    _ => None,
                })
                .collect();
            let policy = policy_hcl(store.mount(), secrets.cluster(), &extra);
            match global.output {
                OutputFormat::Json => {
                    println!(
                        "{}",
                        json!({"mount": store.mount(), "mount_state": mount, "policy": policy})
                    );
                }
                OutputFormat::Text => {
                    let what = match mount {
                        MountState::Present => "already a KV v2 mount",
                        MountState::Created => "created (KV v2)",
                        MountState::NotAllowed => {
                            "not checked: this token may not manage mounts; ask an operator \
                             to enable KV v2 there"
                        }
                    };
                    println!("Mount `{}`: {what}", store.mount());
                    println!(
                        "Policy for kiln (save as kiln.hcl, `bao policy write kiln kiln.hcl`):"
                    );
                    print!("{policy}");
                }
            }
        }
    }
    Ok(Exit::Success)
}

async fn set(global: &GlobalArgs, secrets: &ClusterSecrets, name: &str) -> anyhow::Result<Exit> {
    if let Err(reason) = format!("file:{name}").parse::<SecretRef>() {
        bail!("`{name}`: {reason}");
    }
    if name.starts_with(generated::PREFIX) {
        bail!(
            "`{name}` is kiln's own generated secret; replace it with `kiln secrets rotate {name}`"
        );
    }
    // Typed on a terminal, the value would be echoed on screen.
    if std::io::stdin().is_terminal() {
        bail!(
            "pipe the value in rather than typing it: `kiln secrets set {name} < FILE` \
             (or from a password manager's command)"
        );
    }
    let mut value = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the value from standard input")?;
    // One trailing newline is what `echo` and editors add, not the secret.
    let trimmed = value.strip_suffix('\n').unwrap_or(&value);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    if trimmed.is_empty() {
        bail!("no value on standard input");
    }
    let store = secrets.file_store();
    let version = store
        .write(name, single_value(SecretString::from(trimmed)), Cas::Any)
        .await?;
    match global.output {
        OutputFormat::Json => println!("{}", json!({"set": name, "version": version})),
        OutputFormat::Text => println!(
            "Stored `file:{name}` in {} (version {version}).",
            store.describe()
        ),
    }
    Ok(Exit::Success)
}
