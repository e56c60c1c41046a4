//! The rendered documents held to the real cloud-init (Debian's package):
//! `cloud-init schema` for user-data, cloud-init's own network renderers
//! (`cloud-init devel net-convert`) for network-config, and PyYAML — the
//! parser cloud-init reads every document with — for the exact values.
//!
//! cloud-init 22.4 (Debian 12) has no `schema --schema-type network-config`;
//! converting the config to ENI and networkd files is the stronger check
//! anyway: it is what cloud-init does with it on boot.

mod common;

use std::path::Path;
use std::process::Command;

use kiln_cloud_init::NodeSeed;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn label_file(label: &str) -> String {
    label.replace('/', "_")
}

#[test]
fn every_user_data_passes_cloud_init_schema() {
    let cloud_init = common::tool("cloud-init", "cloud-init");
    let dir = tempfile::tempdir().expect("tempdir");
    for (label, seed) in common::all_seeds() {
        let path = write(
            dir.path(),
            &format!("{}.user-data", label_file(&label)),
            &seed.documents.user_data,
        );
        let output = Command::new(&cloud_init)
            .args(["schema", "--config-file"])
            .arg(&path)
            .output()
            .expect("run cloud-init schema");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("Valid cloud-config"),
            "{label}: cloud-init schema rejected the user-data:\n{stdout}{stderr}\n---\n{}",
            seed.documents.user_data
        );
    }
}

#[test]
fn a_wrong_document_is_rejected_by_the_same_check() {
    let cloud_init = common::tool("cloud-init", "cloud-init");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.user-data",
        "#cloud-config\nssh_pwauth: [1, 2]\nusers: 7\n",
    );
    let status = Command::new(&cloud_init)
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .expect("run cloud-init schema")
        .status;
    assert!(
        !status.success(),
        "cloud-init schema accepted an invalid document"
    );
}

/// PyYAML's reading of each document equals what kiln meant (the structs
/// as JSON): no quoting, folding or YAML 1.1 surprise changes a value.
#[test]
fn pyyaml_reads_exactly_the_rendered_values() {
    let python = common::cloud_init_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    let mut expected = Vec::new();
    for (label, seed) in common::all_seeds() {
        let stem = label_file(&label);
        for (name, text, value) in documents(&seed) {
            files.push(write(dir.path(), &format!("{stem}.{name}"), text));
            expected.push((format!("{label} {name}"), value));
        }
    }
    let script = "import sys, json, yaml\nprint(json.dumps([yaml.safe_load(open(p)) for p in sys.argv[1:]]))";
    let output = Command::new(&python)
        .args(["-c", script])
        .args(&files)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(read.len(), expected.len());
    for ((what, want), got) in expected.iter().zip(&read) {
        assert_eq!(got, want, "{what}: PyYAML reads something else");
    }
}

fn documents(seed: &NodeSeed) -> [(&'static str, &str, serde_json::Value); 3] {
    let json = |value: serde_json::Result<serde_json::Value>| value.expect("json");
    [
        (
            "user-data",
            &seed.documents.user_data,
            json(serde_json::to_value(&seed.cloud_config)),
        ),
        (
            "meta-data",
            &seed.documents.meta_data,
            json(serde_json::to_value(&seed.meta_data)),
        ),
        (
            "network-config",
            &seed.documents.network_config,
            json(serde_json::to_value(&seed.network)),
        ),
    ]
}

/// cloud-init's ENI and networkd renderers turn every network-config into
/// files with the node's address and gateway (and its MAC, when known).
#[test]
fn every_network_config_renders_with_cloud_init_net_convert() {
    let cloud_init = common::tool("cloud-init", "cloud-init");
    let dir = tempfile::tempdir().expect("tempdir");
    for (label, seed) in common::all_seeds() {
        let stem = label_file(&label);
        let input = write(
            dir.path(),
            &format!("{stem}.network-config"),
            &seed.documents.network_config,
        );
        let nic = &seed.network.ethernets[kiln_cloud_init::INTERFACE];
        let ipv4 = &nic.addresses[0];
        for (renderer, wanted) in [
            (
                "eni",
                vec![
                    format!("address {ipv4}"),
                    format!("gateway {}", nic.gateway4),
                ],
            ),
            (
                "networkd",
                vec![
                    format!("Address={ipv4}"),
                    format!("Gateway={}", nic.gateway4),
                ],
            ),
        ] {
            let out = dir.path().join(format!("{stem}.{renderer}"));
            let output = Command::new(&cloud_init)
                .args([
                    "devel",
                    "net-convert",
                    "-k",
                    "yaml",
                    "-D",
                    "debian",
                    "-O",
                    renderer,
                    "-p",
                ])
                .arg(&input)
                .arg("-d")
                .arg(&out)
                .output()
                .expect("run cloud-init devel net-convert");
            assert!(
                output.status.success(),
                "{label}: net-convert -O {renderer} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let rendered = read_tree(&out);
            let mut wanted = wanted;
            if let [_, ipv6] = nic.addresses.as_slice() {
                wanted.push(ipv6.clone());
            }
            if let Some(gateway6) = nic.gateway6 {
                wanted.push(match renderer {
                    "eni" => format!("gateway {gateway6}"),
                    _ => format!("Gateway={gateway6}"),
                });
            }
            if let Some(mac) = &nic.matching.macaddress {
                wanted.push(mac.clone());
            }
            for piece in wanted {
                assert!(
                    rendered.contains(&piece),
                    "{label}: {renderer} output lacks `{piece}`:\n{rendered}"
                );
            }
        }
    }
}

fn read_tree(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|entry| entry.expect("entry").path()),
            );
        } else {
            text.push_str(&std::fs::read_to_string(&path).expect("file"));
        }
    }
    text
}
