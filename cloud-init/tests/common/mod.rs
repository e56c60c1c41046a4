//! Shared by the integration tests: every example inventory, every node
//! cloud-init is rendered for, and two run-time inputs (the plain one
//! `kiln render` uses, and one with every optional part filled in).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kiln_cloud_init::{Command, Generation, HostKeyPair, RenderError, RenderInput, WriteFile};
use kiln_inventory::Inventory;

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// `(file stem, inventory)` for each example, sorted.
pub fn examples() -> Vec<(String, Inventory)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventory/examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("inventory examples")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 4,
        "expected the example inventories in {}",
        dir.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            let inventory = kiln_inventory::load(&path)
                .unwrap_or_else(|error| panic!("{}", error.render(false)));
            (stem, inventory)
        })
        .collect()
}

/// What `kiln render --ssh-public-key` gives: one operator key, generation 1.
pub fn plain_input() -> RenderInput {
    RenderInput {
        authorized_keys: vec![fixture("operator_ed25519.pub").parse().expect("key")],
        generation: Generation::from(1),
        ..RenderInput::default()
    }
}

/// Every optional part: two keys (one with `:` and spaces in its comment),
/// a host key, the MAC Proxmox assigned, upgrades, packages, files, commands.
pub fn full_input() -> RenderInput {
    RenderInput {
        authorized_keys: vec![
            fixture("operator_ed25519.pub").parse().expect("key"),
            fixture("operator_rsa.pub").parse().expect("key"),
        ],
        host_key: Some(
            HostKeyPair::ed25519(fixture("host_ed25519").into(), &fixture("host_ed25519.pub"))
                .expect("host key"),
        ),
        generation: "019aa1b2-run.7".parse().expect("generation"),
        mac: Some("BC:24:11:5E:00:07".parse().expect("mac")),
        package_upgrade: true,
        packages: vec![
            "jq".parse().expect("package"),
            "nfs-common".parse().expect("package"),
        ],
        write_files: vec![
            WriteFile::new(
                "/etc/kiln/agent.toml",
                "collector = \"https://10.0.0.5:9443\"\ninterval = \"15s\"\n",
            )
            .expect("file")
            .permissions(0o600)
            .expect("mode")
            .owner("root:root")
            .expect("owner"),
            WriteFile::new(
                "/home/kiln/.note",
                "yes: no\n# not a comment\n'quoted' \"text\"\n",
            )
            .expect("file")
            .owner("kiln:kiln")
            .expect("owner")
            .deferred(),
        ],
        runcmd: vec![
            Command::new(["sh", "-c", "echo ready > /run/kiln-ready"]).expect("command"),
            Command::new(["systemctl", "enable", "--now", "kiln-agent.service"]).expect("command"),
        ],
    }
}

/// Whether `error` is a node kiln deliberately renders no cloud-config for.
pub fn not_cloud_init(error: &RenderError) -> bool {
    matches!(error, RenderError::BareMetal(_) | RenderError::Talos(_))
}

/// The path of a program the real-component tests run. Missing, the test
/// fails (never skips): `cargo xtask test` installs it.
pub fn tool(name: &str, debian_package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed (Debian package `{debian_package}`): run `cargo xtask test`, which installs what the tests need"
        )
    })
}

/// The Python that cloud-init itself runs with (its script's shebang): the
/// YAML library that matters is the one cloud-init imports, whatever other
/// `python3` comes first on `PATH` (xtask puts the project's venv there).
pub fn cloud_init_python() -> PathBuf {
    let script = tool("cloud-init", "cloud-init");
    let text = std::fs::read_to_string(&script).expect("read the cloud-init script");
    let interpreter = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("#!"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} has no #! line naming its Python", script.display()));
    PathBuf::from(interpreter)
}

/// Every seed the examples render, with the plain and the full input:
/// `(label, seed)`.
pub fn all_seeds() -> Vec<(String, kiln_cloud_init::NodeSeed)> {
    let mut seeds = Vec::new();
    for (example, inventory) in examples() {
        for node in &inventory.nodes {
            for (variant, input) in [("plain", plain_input()), ("full", full_input())] {
                match kiln_cloud_init::render(&inventory, node.name.as_str(), &input) {
                    Ok(seed) => seeds.push((format!("{example}/{}/{variant}", node.name), seed)),
                    Err(error) if not_cloud_init(&error) => {}
                    Err(error) => panic!("{example}/{}: {error}", node.name),
                }
            }
        }
    }
    assert!(
        seeds.len() >= 18,
        "expected every VM node of the examples, got {}",
        seeds.len()
    );
    seeds
}
