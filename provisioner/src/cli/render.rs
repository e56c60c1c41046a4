//! `kiln render NODE`: what a node gets on first boot, without touching
//! Proxmox — the three NoCloud documents and the VM config keys (`ci*` or
//! `cicustom`) kiln would send.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use kiln_cloud_init::{Generation, NodeSeed, RenderInput, SshPublicKey};
use kiln_inventory::values::MacAddr;
use serde_json::json;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

/// The file `--out` writes the Proxmox keys to.
const PROXMOX_CONFIG: &str = "proxmox-config.json";
/// The file `--iso` writes the seed image to.
const SEED_ISO: &str = "seed.iso";

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The node to render, as named in the inventory.
    pub node: String,
    /// Write user-data, meta-data, network-config and proxmox-config.json into
    /// DIR (created if missing) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// An OpenSSH public key file (authorized_keys lines) the node's user
    /// accepts; repeatable. Without it the node gets no key.
    #[arg(long = "ssh-public-key", value_name = "FILE")]
    pub ssh_public_keys: Vec<PathBuf>,
    /// The instance generation, part of the instance-id (a counter or run id).
    #[arg(long, default_value = "1")]
    pub generation: String,
    /// The MAC Proxmox gave net0, when the inventory has none.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Upgrade all packages on first boot.
    #[arg(long)]
    pub package_upgrade: bool,
    /// With --out, also write the cidata seed ISO (seed.iso).
    #[arg(long, requires = "out")]
    pub iso: bool,
}

pub fn run(global: &GlobalArgs, args: &RenderArgs) -> anyhow::Result<Exit> {
    let Some(inventory) = load::inventory(global) else {
        return Ok(Exit::Failure);
    };
    let input = RenderInput {
        authorized_keys: read_public_keys(&args.ssh_public_keys)?,
        generation: args.generation.parse::<Generation>()?,
        mac: args
            .mac
            .as_deref()
            .map(str::parse::<MacAddr>)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        package_upgrade: args.package_upgrade,
        ..RenderInput::default()
    };
    let seed = kiln_cloud_init::render(&inventory, &args.node, &input)?;
    for warning in &seed.warnings {
        eprintln!("warning: {warning}");
    }
    if args.ssh_public_keys.is_empty() {
        eprintln!("hint: pass --ssh-public-key FILE to render the key(s) the node should accept");
    }
    match &args.out {
        Some(dir) => write_files(global, &seed, dir, args.iso)?,
        None => print(global, &seed)?,
    }
    Ok(Exit::Success)
}

/// Every key line of every file; blank lines and `#` comments are skipped,
/// as in authorized_keys.
fn read_public_keys(files: &[PathBuf]) -> anyhow::Result<Vec<SshPublicKey>> {
    let mut keys = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read SSH public key file {}", file.display()))?;
        let before = keys.len();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key: SshPublicKey = line
                .parse()
                .with_context(|| format!("in {}", file.display()))?;
            keys.push(key);
        }
        if keys.len() == before {
            bail!("{} holds no SSH public key", file.display());
        }
    }
    Ok(keys)
}

fn print(global: &GlobalArgs, seed: &NodeSeed) -> anyhow::Result<()> {
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "node": seed.node,
                "documents": seed.documents,
                "proxmox": seed.proxmox,
                "warnings": seed.warnings,
            })
        ),
        OutputFormat::Text => {
            for (name, text) in seed.documents.files() {
                println!("==> {name} <==\n{text}");
            }
            let proxmox = serde_json::to_string_pretty(&seed.proxmox)?;
            println!("==> {PROXMOX_CONFIG} <==\n{proxmox}");
        }
    }
    Ok(())
}

fn write_files(global: &GlobalArgs, seed: &NodeSeed, dir: &Path, iso: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in seed.documents.files() {
        written.push(write(dir, name, text.as_bytes())?);
    }
    let proxmox = format!("{}\n", serde_json::to_string_pretty(&seed.proxmox)?);
    written.push(write(dir, PROXMOX_CONFIG, proxmox.as_bytes())?);
    if iso {
        let path = dir.join(SEED_ISO);
        kiln_cloud_init::write_cidata_iso(&seed.documents, &path)?;
        written.push(path);
    }
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "node": seed.node,
                "out": dir.display().to_string(),
                "files": written.iter().map(|path| path.display().to_string()).collect::<Vec<_>>(),
                "warnings": seed.warnings,
            })
        ),
        OutputFormat::Text => {
            for path in &written {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
