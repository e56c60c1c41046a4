//! `cargo xtask peers`: the real peers kiln's cluster half is tested against
//! (K3s, talosctl, Flux's source- and kustomize-controller, sops), pinned in
//! `xtask/peers.toml` and cached under `~/.cache/kiln/peers/<name>/<version>/`
//! with a `manifest.json` beside the binary.
//!
//! For each peer: a cached binary whose sha256 matches its manifest is used
//! as it is; else, with `--releases`, the official release asset if its
//! published sha256 is pinned and matches; else a build from source through
//! the Go module proxy at exactly the pinned module version, in a scratch
//! directory under `~/.cache/kiln/peers/build/`.
//!
//! Releases are opt-in because the machines this project runs on may reach
//! only the package registries: a download attempt to a release site would
//! be traffic to somewhere else. A user's machine with internet passes
//! `--releases`.
//!
//! Not called from `cargo xtask test` or `cargo xtask setup` yet: CI runs
//! those on a clean clone within a time budget, and a cold build of these
//! peers takes many minutes (K3s alone over ten on two cores). Wiring comes
//! once the cold and warm times are measured.

mod build;
mod cache;
mod pins;

pub use build::Options;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use self::build::{build_from_module_proxy, fetch_release, remove_dir, smoke_test};
use self::cache::{
    CacheCheck, Manifest, Source, cache_root, check_cache, read_manifest, rfc3339_utc,
    sha256_of_file,
};
use self::pins::{PIN_TABLE, Pin, parse_pin_table};

/// How one peer was obtained, for the summary.
struct Obtained {
    how: &'static str,
    seconds: f64,
    size: u64,
}

/// Obtains every selected peer; one failing does not stop the others, and
/// the error at the end names each that failed.
pub fn obtain_all(options: &Options) -> anyhow::Result<()> {
    let pins = parse_pin_table(PIN_TABLE)?;
    for name in &options.names {
        if !pins.iter().any(|pin| &pin.name == name) {
            let known: Vec<&str> = pins.iter().map(|pin| pin.name.as_str()).collect();
            bail!(
                "no peer `{name}` in xtask/peers.toml (pinned: {})",
                known.join(", ")
            );
        }
    }
    let root = cache_root(|name| std::env::var_os(name))?;
    let selected: Vec<&Pin> = pins
        .iter()
        .filter(|pin| options.names.is_empty() || options.names.contains(&pin.name))
        .collect();
    let started = Instant::now();
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    for pin in selected {
        println!("== {} {}", pin.name, pin.version);
        match obtain(pin, &root, options) {
            Ok(obtained) => summary.push((pin, obtained)),
            Err(error) => {
                eprintln!("xtask: peer {} {}: {error:#}", pin.name, pin.version);
                failed.push(pin.name.as_str());
            }
        }
    }
    println!("== peers in {}", root.display());
    for (pin, obtained) in &summary {
        println!(
            "  {:<22} {:<15} {:<13} {:>7.1} s {:>8.1} MiB",
            pin.name,
            pin.version,
            obtained.how,
            obtained.seconds,
            obtained.size as f64 / (1024.0 * 1024.0)
        );
    }
    println!("  all in {:.1} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("peers that failed: {}", failed.join(", "));
    }
    Ok(())
}

fn obtain(pin: &Pin, root: &Path, options: &Options) -> anyhow::Result<Obtained> {
    let dir = root.join(&pin.name).join(&pin.version);
    let binary = dir.join(&pin.binary);
    let manifest_path = dir.join("manifest.json");
    let manifest = read_manifest(&manifest_path)?;
    let digest = sha256_of_file(&binary).ok();
    match check_cache(pin, manifest.as_ref(), digest.as_deref()) {
        CacheCheck::Cached => {
            println!("  cached: {}", binary.display());
            return Ok(Obtained {
                how: "cached",
                seconds: 0.0,
                size: fs::metadata(&binary)?.len(),
            });
        }
        CacheCheck::Missing => {}
        CacheCheck::Stale(why) => println!("  the cached copy is not used: {why}"),
    }

    let started = Instant::now();
    let scratch = root
        .join("build")
        .join(format!("{}-{}", pin.name, pin.version));
    let (built, source) = match fetch_release(pin, &scratch, options)? {
        Some(downloaded) => (downloaded, Source::Release),
        None => {
            let Some(built) = build_from_module_proxy(pin, &scratch, options.fetch_only)? else {
                println!("  modules downloaded (--fetch-only: nothing built)");
                return Ok(Obtained {
                    how: "fetched",
                    seconds: started.elapsed().as_secs_f64(),
                    size: 0,
                });
            };
            (built, Source::ModuleProxy)
        }
    };
    smoke_test(pin, &built)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let sha256 = sha256_of_file(&built)?;
    let manifest = Manifest {
        name: pin.name.clone(),
        version: pin.version.clone(),
        source,
        module: pin.module_ref(),
        substitutes: match source {
            Source::Release => Vec::new(),
            Source::ModuleProxy => pin.substitutes.clone(),
        },
        sha256,
        built_at: rfc3339_utc(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()),
        build_seconds: (build_seconds * 10.0).round() / 10.0,
    };
    install(&built, &binary, &manifest, &manifest_path)?;
    // The copied source and the build output are hundreds of MiB per peer;
    // a failed build keeps them for a look.
    remove_dir(&scratch)?;
    let size = fs::metadata(&binary)?.len();
    println!(
        "  {} {} ready: {} ({:.1} MiB, sha256 {}) in {build_seconds:.1} s",
        pin.name,
        pin.version,
        binary.display(),
        size as f64 / (1024.0 * 1024.0),
        manifest.sha256
    );
    Ok(Obtained {
        how: match source {
            Source::Release => "release",
            Source::ModuleProxy => "module-proxy",
        },
        seconds: build_seconds,
        size,
    })
}

/// Moves the binary into the cache, then writes the manifest, each by a
/// rename so that an interrupted run never leaves a manifest for a partial
/// binary.
fn install(
    built: &Path,
    binary: &Path,
    manifest: &Manifest,
    manifest_path: &Path,
) -> anyhow::Result<()> {
    let dir = binary
        .parent()
        .context("the cached binary has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = fs::remove_file(manifest_path);
    let partial_binary = dir.join(".binary.partial");
    fs::copy(built, &partial_binary)
        .with_context(|| format!("cannot copy {} into the cache", built.display()))?;
    fs::set_permissions(&partial_binary, fs::Permissions::from_mode(0o755))?;
    fs::rename(&partial_binary, binary)?;
    let partial_manifest = dir.join(".manifest.partial");
    fs::write(
        &partial_manifest,
        serde_json::to_string_pretty(manifest)? + "\n",
    )?;
    fs::rename(&partial_manifest, manifest_path)?;
    Ok(())
}
