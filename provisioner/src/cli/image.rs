//! `kiln image build|list`: the golden-image builder and the catalog.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kiln_images::{Cache, Recipe, catalog};

use super::{Exit, GlobalArgs, OutputFormat};

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
}

pub fn run(global: &GlobalArgs, args: &ImageArgs) -> anyhow::Result<Exit> {
    let cache = Cache::default_location()?;
    match &args.command {
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
