//! Obtaining a peer that is not cached: its release (when asked for and
//! pinned with a sha256), else a build from source through the Go module proxy.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use super::cache::sha256_of_file;
use super::pins::Pin;
use crate::command::{self, Captured};

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

/// The release asset, checked against its pinned sha256, when `--releases`
/// asks for it and a digest is pinned. `None` sends the caller to the
/// module proxy; a digest mismatch is an error, never a fallback.
pub(super) fn fetch_release(
    pin: &Pin,
    scratch: &Path,
    options: &Options,
) -> anyhow::Result<Option<PathBuf>> {
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
pub(super) fn go_env(pin: &Pin, inherited_goflags: Option<&str>) -> Vec<(String, OsString)> {
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

pub(super) fn as_env_refs(env: &[(String, OsString)]) -> Vec<(&str, &OsStr)> {
    env.iter()
        .map(|(name, value)| (name.as_str(), value.as_os_str()))
        .collect()
}

/// Builds the peer from its module's source as the proxy serves it, in the
/// module's own directory (so its `replace` lines hold), with the nested
/// modules the zip leaves out replaced by their published versions.
/// Returns `None` after downloading when `fetch_only`.
pub(super) fn build_from_module_proxy(
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
pub(super) fn download_module(pin: &Pin) -> anyhow::Result<PathBuf> {
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
pub(super) fn go_failure(step: &str, captured: &Captured) -> anyhow::Error {
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

/// Runs the binary with the pinned smoke arguments: it must exit 0.
pub(super) fn smoke_test(pin: &Pin, binary: &Path) -> anyhow::Result<()> {
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

/// What `cargo xtask peers` was asked to do.
pub struct Options {
    /// Only these peers (all when empty).
    pub names: Vec<String>,
    /// Try the official release assets whose sha256 is pinned.
    pub releases: bool,
    /// Download the modules a build needs, and build nothing.
    pub fetch_only: bool,
}

/// Removes what an earlier build left and creates the directory anew.
pub(super) fn make_fresh_dir(dir: &Path) -> anyhow::Result<()> {
    remove_dir(dir)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Removes a scratch directory, if there is one; a copy of a module keeps
/// the module cache's read-only modes, so they are lifted first.
pub(super) fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        command::run("chmod", &["-R", "u+w", &dir.to_string_lossy()], &[])?;
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::pins::pin_named;
    use super::*;
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
}
