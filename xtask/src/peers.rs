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

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::{self, Captured};

/// The pin table, compiled in so that its unit test checks the committed file.
const PIN_TABLE: &str = include_str!("../peers.toml");

/// One peer as `xtask/peers.toml` pins it (the file's header explains each field).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    pub name: String,
    pub version: String,
    pub binary: String,
    pub module: String,
    pub module_version: String,
    #[serde(default)]
    pub nested: Vec<String>,
    #[serde(default)]
    pub substitutes: Vec<String>,
    pub package: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ldflags: String,
    #[serde(default)]
    pub cgo: bool,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "local_toolchain")]
    pub go_toolchain: String,
    #[serde(default)]
    pub smoke: Vec<String>,
    #[serde(default)]
    pub release_url: String,
    #[serde(default)]
    pub release_sha256: String,
}

fn local_toolchain() -> String {
    "local".to_owned()
}

impl Pin {
    /// `module@module_version`, as the proxy is asked for it.
    pub fn module_ref(&self) -> String {
        format!("{}@{}", self.module, self.module_version)
    }

    /// The release asset and its digest, when both are pinned.
    fn release(&self) -> Option<(&str, &str)> {
        (!self.release_url.is_empty() && !self.release_sha256.is_empty())
            .then_some((self.release_url.as_str(), self.release_sha256.as_str()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinTable {
    peer: Vec<Pin>,
}

/// Parses and checks a pin table: every field the build relies on is there
/// and well formed, and no two peers share a name.
pub fn parse_pin_table(text: &str) -> anyhow::Result<Vec<Pin>> {
    let table: PinTable =
        toml::from_str(text).context("xtask/peers.toml is not a valid pin table")?;
    let mut names = BTreeSet::new();
    for pin in &table.peer {
        check_pin(pin).with_context(|| format!("xtask/peers.toml: peer `{}`", pin.name))?;
        ensure!(
            names.insert(pin.name.as_str()),
            "xtask/peers.toml: peer `{}` is pinned twice",
            pin.name
        );
    }
    Ok(table.peer)
}

fn check_pin(pin: &Pin) -> anyhow::Result<()> {
    for (field, value) in [
        ("name", &pin.name),
        ("version", &pin.version),
        ("binary", &pin.binary),
    ] {
        // These become path components of the cache.
        ensure!(
            !value.is_empty() && !value.contains('/') && value != "." && value != "..",
            "`{field}` must be a non-empty file name, not {value:?}"
        );
    }
    ensure!(!pin.module.is_empty(), "`module` is empty");
    ensure!(
        pin.package == "." || pin.package.starts_with("./"),
        "`package` must be relative to the module root (`.` or `./…`), not {:?}",
        pin.package
    );
    for nested in &pin.nested {
        let (path, version) = nested
            .split_once('@')
            .with_context(|| format!("`nested` entry {nested:?} is not `path@version`"))?;
        ensure!(
            path.starts_with(&format!("{}/", pin.module)) && !version.is_empty(),
            "`nested` entry {nested:?} must be a module under {} with a version",
            pin.module
        );
    }
    for substitute in &pin.substitutes {
        ensure!(
            substitute
                .split_once('@')
                .is_some_and(|(path, version)| !path.is_empty() && !version.is_empty()),
            "`substitutes` entry {substitute:?} is not `path@version`"
        );
    }
    for variable in &pin.env {
        ensure!(
            variable
                .split_once('=')
                .is_some_and(|(name, _)| !name.is_empty()),
            "`env` entry {variable:?} is not `NAME=value`"
        );
    }
    ensure!(!pin.go_toolchain.is_empty(), "`go_toolchain` is empty");
    ensure!(
        pin.release_sha256.is_empty() || is_sha256_hex(&pin.release_sha256),
        "`release_sha256` must be 64 lowercase hex digits or empty"
    );
    ensure!(
        pin.release_sha256.is_empty() || !pin.release_url.is_empty(),
        "`release_sha256` is pinned without a `release_url`"
    );
    Ok(())
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Where a cached peer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Release,
    ModuleProxy,
}

/// `manifest.json` beside each cached binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub source: Source,
    /// `module@module_version` the binary was built from (or corresponds to,
    /// for a release).
    pub module: String,
    /// Dependencies built at another version than the module requires,
    /// because the proxy refused the required one (`path@version`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitutes: Vec<String>,
    /// Of the binary as cached.
    pub sha256: String,
    /// RFC 3339, UTC.
    pub built_at: String,
    /// Wall time of the download or the build, all steps together.
    pub build_seconds: f64,
}

/// Whether the cache already holds a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheCheck {
    Cached,
    Missing,
    /// There is something, but it is not the pinned peer intact.
    Stale(String),
}

/// Decides from the manifest and the digest of the cached binary (`None`
/// when either file is absent) whether the pinned peer is cached.
pub fn check_cache(
    pin: &Pin,
    manifest: Option<&Manifest>,
    binary_sha256: Option<&str>,
) -> CacheCheck {
    let Some(manifest) = manifest else {
        return CacheCheck::Missing;
    };
    if manifest.name != pin.name || manifest.version != pin.version {
        return CacheCheck::Stale(format!(
            "the manifest is for {} {}",
            manifest.name, manifest.version
        ));
    }
    if manifest.source == Source::ModuleProxy && manifest.module != pin.module_ref() {
        return CacheCheck::Stale(format!(
            "built from {}, now pinned to {}",
            manifest.module,
            pin.module_ref()
        ));
    }
    if manifest.source == Source::ModuleProxy && manifest.substitutes != pin.substitutes {
        return CacheCheck::Stale(format!(
            "built with the substitutes {:?}, now pinned {:?}",
            manifest.substitutes, pin.substitutes
        ));
    }
    match binary_sha256 {
        None => CacheCheck::Stale("the binary is missing".to_owned()),
        Some(digest) if digest != manifest.sha256 => CacheCheck::Stale(format!(
            "the binary's sha256 is {digest}, the manifest says {}",
            manifest.sha256
        )),
        Some(_) => CacheCheck::Cached,
    }
}

/// The modules the Go module proxy refused, read from the go command's
/// error output (`go: …: reading https://…/@v/….info: 403 Forbidden`,
/// `… not found`, `… unknown revision …`), each once, in order.
pub fn refused_modules(go_stderr: &str) -> Vec<String> {
    let mut refused: Vec<String> = Vec::new();
    for line in go_stderr.lines() {
        let line = line.trim().trim_start_matches("go: ");
        let is_refusal = line.contains(": reading http")
            || line.contains("unknown revision")
            || line.contains("invalid version")
            || line.contains("404 Not Found")
            || line.contains("410 Gone")
            || line.contains("403 Forbidden");
        if !is_refusal {
            continue;
        }
        // Lines read `[file:line:col: ]path@version: reading https://…: 403
        // Forbidden`, or behind another prefix (`verifying module: …`); the
        // URL part holds an `@` too, but after a space.
        let module = line
            .split(": ")
            .find(|part| part.contains('@') && !part.contains(' '));
        if let Some(module) = module
            && !refused.iter().any(|known| known == module)
        {
            refused.push(module.to_owned());
        }
    }
    refused
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2026-12-02T14:05:09Z`).
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `$KILN_CACHE_DIR/peers`, else `$XDG_CACHE_HOME/kiln/peers`, else
/// `~/.cache/kiln/peers` (the same order as the image cache's).
pub fn cache_root(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |name: &str| {
        var(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set("KILN_CACHE_DIR") {
        return Ok(dir.join("peers"));
    }
    if let Some(dir) = set("XDG_CACHE_HOME") {
        return Ok(dir.join("kiln/peers"));
    }
    set("HOME")
        .map(|home| home.join(".cache/kiln/peers"))
        .context("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")
}

/// What `cargo xtask peers` was asked to do.
pub struct Options {
    /// Only these peers (all when empty).
    pub names: Vec<String>,
    /// Try the official release assets whose sha256 is pinned.
    pub releases: bool,
    /// Download the modules a build needs, and build nothing.
    pub fetch_only: bool,
}

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

fn read_manifest(path: &Path) -> anyhow::Result<Option<Manifest>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn sha256_of_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The release asset, checked against its pinned sha256, when `--releases`
/// asks for it and a digest is pinned. `None` sends the caller to the
/// module proxy; a digest mismatch is an error, never a fallback.
fn fetch_release(pin: &Pin, scratch: &Path, options: &Options) -> anyhow::Result<Option<PathBuf>> {
    if !options.releases || options.fetch_only {
        return Ok(None);
    }
    let Some((url, pinned_sha256)) = pin.release() else {
        println!("  no release with a published sha256 is pinned: building from source");
        return Ok(None);
    };
    fs::create_dir_all(scratch)?;
    let download = scratch.join(format!("{}.release", pin.binary));
    let download_arg = download.to_string_lossy();
    // A short timeout: where release sites are unreachable this should cost
    // seconds, not minutes, before the build from source starts.
    let fetched = command::run(
        "curl",
        &[
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--connect-timeout",
            "5",
            "--max-time",
            "120",
            "--output",
            &download_arg,
            url,
        ],
        &[],
    );
    if let Err(error) = fetched {
        println!("  the release is not reachable ({error:#}): building from source");
        return Ok(None);
    }
    let digest = sha256_of_file(&download)?;
    ensure!(
        digest == pinned_sha256,
        "the release {url} has sha256 {digest}, xtask/peers.toml pins {pinned_sha256}: refusing it"
    );
    println!("  release downloaded, sha256 matches the pin");
    Ok(Some(download))
}

/// The environment of every go command of one peer's build, keeping the
/// flags the caller's `GOFLAGS` already sets.
fn go_env(pin: &Pin, inherited_goflags: Option<&str>) -> Vec<(String, OsString)> {
    // The copied module's go.sum lacks the nested modules' published
    // versions: let the go command add them (checked against sumdb).
    let goflags = match inherited_goflags.map(str::trim) {
        Some(flags) if !flags.is_empty() => format!("{flags} -mod=mod"),
        _ => "-mod=mod".to_owned(),
    };
    let mut env = vec![
        ("GOFLAGS".to_owned(), OsString::from(goflags)),
        // Talos ships a go.work naming its nested modules' directories,
        // which the module zip does not have.
        ("GOWORK".to_owned(), OsString::from("off")),
        ("GOTOOLCHAIN".to_owned(), OsString::from(&pin.go_toolchain)),
        (
            "CGO_ENABLED".to_owned(),
            OsString::from(if pin.cgo { "1" } else { "0" }),
        ),
    ];
    for variable in &pin.env {
        if let Some((name, value)) = variable.split_once('=') {
            env.push((name.to_owned(), OsString::from(value)));
        }
    }
    env
}

fn as_env_refs(env: &[(String, OsString)]) -> Vec<(&str, &OsStr)> {
    env.iter()
        .map(|(name, value)| (name.as_str(), value.as_os_str()))
        .collect()
}

/// Builds the peer from its module's source as the proxy serves it, in the
/// module's own directory (so its `replace` lines hold), with the nested
/// modules the zip leaves out replaced by their published versions.
/// Returns `None` after downloading when `fetch_only`.
fn build_from_module_proxy(
    pin: &Pin,
    scratch: &Path,
    fetch_only: bool,
) -> anyhow::Result<Option<PathBuf>> {
    ensure!(
        !pin.module_version.is_empty(),
        "no `module_version` is pinned for {} in xtask/peers.toml, so it cannot be built from \
         source (see the comment there)",
        pin.module
    );
    println!(
        "  building {} from source through the Go module proxy ({}); a cold build takes minutes",
        pin.name,
        pin.module_ref()
    );
    let env = go_env(pin, std::env::var("GOFLAGS").ok().as_deref());
    let env_refs = as_env_refs(&env);

    let module_dir = download_module(pin)?;

    let source = scratch.join("src");
    make_fresh_dir(scratch)?;
    let source_arg = source.to_string_lossy().into_owned();
    command::run(
        "cp",
        &["-R", &module_dir.to_string_lossy(), &source_arg],
        &[],
    )
    .context("step `copy the module source` broke")?;
    // The module cache is read-only; the copy gets a go.mod edit and go.sum entries.
    command::run("chmod", &["-R", "u+w", &source_arg], &[])
        .context("step `make the copy writable` broke")?;
    for nested in &pin.nested {
        let (path, _) = nested.split_once('@').unwrap_or((nested, ""));
        let replace = format!("-replace={path}={nested}");
        command::run(
            "go",
            &["-C", &source_arg, "mod", "edit", &replace],
            &env_refs,
        )
        .with_context(|| format!("step `replace the nested module {nested}` broke"))?;
    }
    for substitute in &pin.substitutes {
        let (path, _) = substitute.split_once('@').unwrap_or((substitute, ""));
        println!("  substitute: {substitute} (the proxy refuses the version the module requires)");
        let replace = format!("-replace={path}={substitute}");
        command::run(
            "go",
            &["-C", &source_arg, "mod", "edit", &replace],
            &env_refs,
        )
        .with_context(|| format!("step `substitute {substitute}` broke"))?;
    }

    let tags = pin.tags.join(",");
    let tag_args: &[&str] = if tags.is_empty() {
        &[]
    } else {
        &["-tags", &tags]
    };
    let mut list_args = vec!["-C", &source_arg, "list", "-deps"];
    list_args.extend_from_slice(tag_args);
    // Print nothing but errors: the package list runs to thousands.
    list_args.extend_from_slice(&["-f", "{{with .Error}}{{.}}{{end}}", &pin.package]);
    let fetched = command::run_captured("go", &list_args, &env_refs)
        .context("step `download the dependencies` broke")?;
    if !fetched.status.success() {
        return Err(go_failure("download the dependencies", &fetched));
    }
    if fetch_only {
        return Ok(None);
    }

    let output = scratch.join(&pin.binary);
    let output_arg = output.to_string_lossy().into_owned();
    // Long builds yield to whatever else the machine runs.
    let mut build_args = vec!["-n", "10", "go", "-C", &source_arg, "build", "-trimpath"];
    build_args.extend_from_slice(tag_args);
    build_args.extend_from_slice(&["-ldflags", &pin.ldflags, "-o", &output_arg, &pin.package]);
    let started = Instant::now();
    command::run("nice", &build_args, &env_refs).context("step `go build` broke")?;
    println!("  compiled in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Some(output))
}

/// `go mod download -json module@version`: the module's directory in the
/// module cache, or an error naming what the proxy refused.
fn download_module(pin: &Pin) -> anyhow::Result<PathBuf> {
    #[derive(Deserialize)]
    struct Download {
        #[serde(rename = "Dir", default)]
        dir: String,
        #[serde(rename = "Error", default)]
        error: String,
    }
    let module_ref = pin.module_ref();
    let toolchain = OsString::from(&pin.go_toolchain);
    let answer = command::run_captured(
        "go",
        &["mod", "download", "-json", &module_ref],
        &[("GOTOOLCHAIN", &toolchain), ("GOFLAGS", OsStr::new(""))],
    )
    .context("step `download the module` broke")?;
    let download: Option<Download> = serde_json::from_str(&answer.stdout).ok();
    match download {
        Some(download) if answer.status.success() && !download.dir.is_empty() => {
            Ok(PathBuf::from(download.dir))
        }
        Some(download) if !download.error.is_empty() => bail!(
            "the Go module proxy refused {module_ref}: {}",
            download.error.trim()
        ),
        _ => Err(go_failure("download the module", &answer)),
    }
}

/// An error for a failed go command: the module the proxy refused if its
/// output names one, else the step and the end of what it printed.
fn go_failure(step: &str, captured: &Captured) -> anyhow::Error {
    eprint!("{}", captured.stderr);
    let refused = refused_modules(&captured.stderr);
    if !refused.is_empty() {
        return anyhow::anyhow!(
            "step `{step}`: the Go module proxy refused {}",
            refused.join(", ")
        );
    }
    let tail: Vec<&str> = captured.stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    anyhow::anyhow!(
        "step `{step}` broke ({}): {}",
        captured.status,
        tail.join(" | ")
    )
}

/// Removes what an earlier build left and creates the directory anew.
fn make_fresh_dir(dir: &Path) -> anyhow::Result<()> {
    remove_dir(dir)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Removes a scratch directory, if there is one; a copy of a module keeps
/// the module cache's read-only modes, so they are lifted first.
fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        command::run("chmod", &["-R", "u+w", &dir.to_string_lossy()], &[])?;
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// Runs the binary with the pinned smoke arguments: it must exit 0.
fn smoke_test(pin: &Pin, binary: &Path) -> anyhow::Result<()> {
    fs::set_permissions(binary, fs::Permissions::from_mode(0o755))?;
    if pin.smoke.is_empty() {
        return Ok(());
    }
    let arguments: Vec<&str> = pin.smoke.iter().map(String::as_str).collect();
    let ran = command::run_captured(&binary.to_string_lossy(), &arguments, &[])
        .context("step `smoke test` broke")?;
    ensure!(
        ran.status.success(),
        "step `smoke test` broke: `{} {}` exited with {}: {}",
        pin.binary,
        arguments.join(" "),
        ran.status,
        ran.stderr.trim()
    );
    let first_line = ran
        .stdout
        .lines()
        .chain(ran.stderr.lines())
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    println!("  smoke test passed: {}", first_line.trim());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pin_named(name: &str) -> Pin {
        Pin {
            name: name.to_owned(),
            version: "v1.0.0".to_owned(),
            binary: name.to_owned(),
            module: "example.com/tool".to_owned(),
            module_version: "v1.0.0".to_owned(),
            nested: vec!["example.com/tool/api@v1.0.0".to_owned()],
            substitutes: vec![],
            package: "./cmd/tool".to_owned(),
            tags: vec![],
            ldflags: "-s -w".to_owned(),
            cgo: false,
            env: vec![],
            go_toolchain: "local".to_owned(),
            smoke: vec!["--version".to_owned()],
            release_url: String::new(),
            release_sha256: String::new(),
        }
    }

    fn manifest_for(pin: &Pin, sha256: &str) -> Manifest {
        Manifest {
            name: pin.name.clone(),
            version: pin.version.clone(),
            source: Source::ModuleProxy,
            module: pin.module_ref(),
            substitutes: pin.substitutes.clone(),
            sha256: sha256.to_owned(),
            built_at: "2026-12-02T14:00:00Z".to_owned(),
            build_seconds: 12.5,
        }
    }

    #[test]
    fn the_committed_pin_table_parses_and_pins_every_peer_of_issue_14() {
        let pins = parse_pin_table(PIN_TABLE).expect("xtask/peers.toml");
        let names: Vec<&str> = pins.iter().map(|pin| pin.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "talosctl",
                "sops",
                "source-controller",
                "kustomize-controller",
                "k3s"
            ]
        );
        let talosctl = &pins[0];
        assert_eq!(talosctl.module_ref(), "github.com/siderolabs/talos@v1.13.9");
        assert_eq!(
            talosctl.nested,
            ["github.com/siderolabs/talos/pkg/machinery@v1.13.9"]
        );
        // K3s stays on the 1.34 line: this machine's cgroups are v1.
        assert!(pins[4].version.starts_with("v1.34."));
    }

    #[test]
    fn a_minimal_entry_gets_the_defaults() {
        let text = r#"
            [[peer]]
            name = "tool"
            version = "v1.0.0"
            binary = "tool"
            module = "example.com/tool"
            module_version = "v1.0.0"
            package = "."
        "#;
        let pins = parse_pin_table(text).expect("minimal table");
        assert_eq!(pins[0].go_toolchain, "local");
        assert!(pins[0].nested.is_empty() && pins[0].smoke.is_empty());
        assert_eq!(pins[0].release(), None);
    }

    #[test]
    fn malformed_pins_are_refused_with_the_peer_named() {
        let table = |field: &str| {
            format!(
                "[[peer]]\nname = \"tool\"\nversion = \"v1\"\nbinary = \"tool\"\n\
                 module = \"example.com/tool\"\nmodule_version = \"v1\"\npackage = \".\"\n{field}\n"
            )
        };
        for (field, expected) in [
            (
                "nested = [\"example.com/other@v1\"]",
                "must be a module under",
            ),
            ("nested = [\"example.com/tool/api\"]", "not `path@version`"),
            ("env = [\"=x\"]", "not `NAME=value`"),
            ("substitutes = [\"example.com/dep\"]", "not `path@version`"),
            ("release_sha256 = \"abc\"", "64 lowercase hex"),
            (
                "release_sha256 = \"e5bec3346a873ae91d871550f3e698c1aad962aff462a080e40f25fde17fef6b\"",
                "without a `release_url`",
            ),
            ("colour = \"red\"", "unknown field"),
        ] {
            let error = format!("{:#}", parse_pin_table(&table(field)).expect_err(field));
            assert!(error.contains(expected), "{field}: {error}");
        }
        let twice = format!("{}{}", table(""), table(""));
        let error = format!("{:#}", parse_pin_table(&twice).expect_err("duplicate"));
        assert!(error.contains("pinned twice"), "{error}");
        let escaping = table("").replace("name = \"tool\"", "name = \"../tool\"");
        assert!(parse_pin_table(&escaping).is_err());
    }

    #[test]
    fn a_binary_matching_its_manifest_is_cached() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        assert_eq!(
            check_cache(&pin, Some(&manifest), Some("aa")),
            CacheCheck::Cached
        );
    }

    #[test]
    fn no_manifest_means_missing_whatever_the_binary() {
        let pin = pin_named("tool");
        assert_eq!(check_cache(&pin, None, Some("aa")), CacheCheck::Missing);
        assert_eq!(check_cache(&pin, None, None), CacheCheck::Missing);
    }

    #[test]
    fn a_changed_or_missing_binary_or_a_new_pin_is_stale() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        assert!(matches!(
            check_cache(&pin, Some(&manifest), Some("bb")),
            CacheCheck::Stale(why) if why.contains("bb")
        ));
        assert!(matches!(
            check_cache(&pin, Some(&manifest), None),
            CacheCheck::Stale(why) if why.contains("missing")
        ));
        let mut repinned = pin.clone();
        repinned.module_version = "v1.0.1".to_owned();
        assert!(matches!(
            check_cache(&repinned, Some(&manifest), Some("aa")),
            CacheCheck::Stale(why) if why.contains("v1.0.1")
        ));
        let mut substituted = pin.clone();
        substituted.substitutes = vec!["example.com/dep@v0.1.0".to_owned()];
        assert!(matches!(
            check_cache(&substituted, Some(&manifest), Some("aa")),
            CacheCheck::Stale(why) if why.contains("substitutes")
        ));
        let other = manifest_for(&pin_named("other"), "aa");
        assert!(matches!(
            check_cache(&pin, Some(&other), Some("aa")),
            CacheCheck::Stale(_)
        ));
    }

    #[test]
    fn a_release_is_cached_whatever_module_it_names() {
        let pin = pin_named("tool");
        let mut manifest = manifest_for(&pin, "aa");
        manifest.source = Source::Release;
        manifest.module = String::new();
        assert_eq!(
            check_cache(&pin, Some(&manifest), Some("aa")),
            CacheCheck::Cached
        );
    }

    #[test]
    fn the_manifest_reads_back_with_its_source_spelled_as_documented() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        let json = serde_json::to_string(&manifest).expect("serialize");
        assert!(json.contains("\"source\":\"module-proxy\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Manifest>(&json).expect("parse"),
            manifest
        );
    }

    #[test]
    fn the_refused_modules_are_read_from_the_go_commands_error() {
        let stderr = "go: github.com/k3s-io/k3s@v1.34.10: reading \
                      https://proxy.golang.org/github.com/k3s-io/k3s/@v/v1.34.10.info: 403 Forbidden\n\
                      \tserver response: This module version is not available.\n";
        assert_eq!(refused_modules(stderr), ["github.com/k3s-io/k3s@v1.34.10"]);
        let listed = "pkg/a.go:8:2: example.com/b@v0.2.0: reading \
                      https://proxy.golang.org/example.com/b/@v/v0.2.0.zip: 403 Forbidden\n\
                      cmd/c.go:12:2: example.com/b@v0.2.0: reading \
                      https://proxy.golang.org/example.com/b/@v/v0.2.0.zip: 403 Forbidden\n\
                      cmd/d.go:14:2: example.com/e/v3@v3.6.12: reading \
                      https://proxy.golang.org/example.com/e/v3/@v/v3.6.12.zip: 403 Forbidden\n";
        assert_eq!(
            refused_modules(listed),
            ["example.com/b@v0.2.0", "example.com/e/v3@v3.6.12"]
        );
        let chain = "go: example.com/a@v1.0.0 requires\n\
                     \texample.com/b@v0.2.0: reading https://proxy.golang.org/example.com/b/@v/v0.2.0.mod: 404 Not Found\n";
        assert_eq!(refused_modules(chain), ["example.com/b@v0.2.0"]);
        assert!(refused_modules("main.go:3:2: undefined: x\n").is_empty());
    }

    #[test]
    fn the_build_environment_keeps_the_callers_goflags_and_the_pins_variables() {
        let mut pin = pin_named("tool");
        pin.env = vec!["GOAMD64=v2".to_owned()];
        let env = go_env(&pin, Some("-buildvcs=false"));
        let value = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.to_string_lossy().into_owned())
        };
        assert_eq!(
            value("GOFLAGS").as_deref(),
            Some("-buildvcs=false -mod=mod")
        );
        assert_eq!(value("GOWORK").as_deref(), Some("off"));
        assert_eq!(value("CGO_ENABLED").as_deref(), Some("0"));
        assert_eq!(value("GOAMD64").as_deref(), Some("v2"));
        let bare = go_env(&pin, None);
        assert!(
            bare.iter()
                .any(|(key, value)| key == "GOFLAGS" && value == "-mod=mod")
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_796_220_309), "2026-12-02T14:05:09Z");
    }

    #[test]
    fn the_cache_follows_the_image_caches_order() {
        let from = |pairs: &'static [(&'static str, &'static str)]| {
            cache_root(move |name| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            })
            .expect("a cache root")
        };
        assert_eq!(
            from(&[("KILN_CACHE_DIR", "/k"), ("HOME", "/h")]),
            PathBuf::from("/k/peers")
        );
        assert_eq!(
            from(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            PathBuf::from("/x/kiln/peers")
        );
        assert_eq!(
            from(&[("HOME", "/h")]),
            PathBuf::from("/h/.cache/kiln/peers")
        );
        assert!(cache_root(|_| None).is_err());
    }
}
