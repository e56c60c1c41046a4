//! The pin table (`xtask/peers.toml`): one entry per peer, checked when read.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use serde::Deserialize;

/// The pin table, compiled in so that its unit test checks the committed file.
pub(super) const PIN_TABLE: &str = include_str!("../../peers.toml");

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

pub(super) fn local_toolchain() -> String {
    "local".to_owned()
}

impl Pin {
    /// `module@module_version`, as the proxy is asked for it.
    pub fn module_ref(&self) -> String {
        format!("{}@{}", self.module, self.module_version)
    }

    /// The release asset and its digest, when both are pinned.
    pub(super) fn release(&self) -> Option<(&str, &str)> {
        (!self.release_url.is_empty() && !self.release_sha256.is_empty())
            .then_some((self.release_url.as_str(), self.release_sha256.as_str()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PinTable {
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

pub(super) fn check_pin(pin: &Pin) -> anyhow::Result<()> {
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
        // Usually under the module's own path; Kubernetes's staging
        // modules (k8s.io/api, …) are not.
        ensure!(
            !path.is_empty() && !version.is_empty(),
            "`nested` entry {nested:?} must name a module and its version"
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

pub(super) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// A pin with every default, for the tests of the other modules.
#[cfg(test)]
pub(super) fn pin_named(name: &str) -> Pin {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                "k3s",
                "kube-apiserver"
            ]
        );
        let talosctl = &pins[0];
        assert_eq!(talosctl.module_ref(), "github.com/siderolabs/talos@v1.13.9");
        assert_eq!(
            talosctl.nested,
            ["github.com/siderolabs/talos/pkg/machinery@v1.13.9"]
        );
        // K3s stays on the 1.34 line: this machine's cgroups are v1; the
        // API server standing in for its API is of the same line.
        assert!(pins[4].version.starts_with("v1.34."));
        assert!(pins[5].version.starts_with("v1.34."));
        assert_eq!(
            pins[5].nested.len(),
            31,
            "every staging module of k8s.io/kubernetes"
        );
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
                "nested = [\"example.com/other@\"]",
                "must name a module and its version",
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
}
