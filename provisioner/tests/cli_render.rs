//! `kiln render`: the CLI around kiln-cloud-init, run as a user would.

use std::path::PathBuf;

use assert_cmd::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn kiln(inventory: &str) -> Command {
    let mut command = Command::cargo_bin("kiln").expect("kiln binary");
    command
        .env_remove("KILN_INVENTORY")
        .arg("-i")
        .arg(repo(&format!("inventory/examples/{inventory}")));
    command
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn without_a_key_it_renders_and_warns_that_nobody_can_log_in() {
    let output = kiln("lab.yaml")
        .args(["render", "lab1"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    for header in [
        "==> user-data <==\n#cloud-config\n",
        "==> meta-data <==",
        "==> network-config <==",
        "==> proxmox-config.json <==",
    ] {
        assert!(out.contains(header), "missing {header:?} in:\n{out}");
    }
    assert!(!out.contains("ssh_authorized_keys"), "{out}");
    let err = stderr(&output);
    assert!(err.contains("warning: no SSH public key"), "{err}");
    assert!(err.contains("--ssh-public-key"), "{err}");
}

#[test]
fn keys_from_files_reach_user_data_and_sshkeys() {
    let key = repo("cloud-init/tests/fixtures/operator_ed25519.pub");
    let output = kiln("minimal.yaml")
        .args(["-o", "json", "render", "box", "--ssh-public-key"])
        .arg(&key)
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    let key_line = std::fs::read_to_string(&key).expect("key");
    let user_data = value["documents"]["user-data"].as_str().expect("user-data");
    assert!(user_data.contains(key_line.trim()), "{user_data}");
    assert_eq!(value["proxmox"]["delivery"], "native");
    let sshkeys = value["proxmox"]["keys"]["sshkeys"]
        .as_str()
        .expect("sshkeys");
    assert!(sshkeys.starts_with("ssh-ed25519%20AAAA"), "{sshkeys}");
    assert!(!stderr(&output).contains("no SSH public key"));
}

#[test]
fn out_writes_the_four_files_and_the_iso() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = kiln("homelab-k3s.yaml")
        .args([
            "render",
            "cp2",
            "--generation",
            "5",
            "--mac",
            "bc:24:11:00:00:02",
            "--iso",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    for name in [
        "user-data",
        "meta-data",
        "network-config",
        "proxmox-config.json",
        "seed.iso",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} not written");
    }
    let meta = std::fs::read_to_string(dir.path().join("meta-data")).expect("meta-data");
    assert!(meta.contains("instance-id: kiln-home-cp2-5"), "{meta}");
    let network =
        std::fs::read_to_string(dir.path().join("network-config")).expect("network-config");
    assert!(
        network.contains("macaddress: bc:24:11:00:00:02"),
        "{network}"
    );
    let proxmox: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("proxmox-config.json")).expect("json"),
    )
    .expect("valid JSON");
    assert_eq!(proxmox["delivery"], "cicustom");
}

#[test]
fn nodes_without_cloud_init_and_bad_input_fail_with_a_message() {
    let talos = kiln("homelab-talos.yaml")
        .args(["render", "cp1"])
        .output()
        .expect("run");
    assert_eq!(talos.status.code(), Some(1));
    assert!(stderr(&talos).contains("Talos"), "{}", stderr(&talos));
    let unknown = kiln("lab.yaml")
        .args(["render", "nope"])
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("`nope` is not in the inventory"));
    let bad_mac = kiln("lab.yaml")
        .args(["render", "lab1", "--mac", "zz"])
        .output()
        .expect("run");
    assert_eq!(bad_mac.status.code(), Some(1));
    assert!(
        stderr(&bad_mac).contains("invalid MAC"),
        "{}",
        stderr(&bad_mac)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let not_a_key = dir.path().join("key.pub");
    std::fs::write(&not_a_key, "hello world\n").expect("write");
    let bad_key = kiln("lab.yaml")
        .args(["render", "lab1", "--ssh-public-key"])
        .arg(&not_a_key)
        .output()
        .expect("run");
    assert_eq!(bad_key.status.code(), Some(1));
    assert!(
        stderr(&bad_key).contains("invalid SSH public key"),
        "{}",
        stderr(&bad_key)
    );
}

#[test]
fn an_invalid_inventory_is_reported_like_validate_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kiln.yaml");
    std::fs::write(&file, "cluster: {name: Bad_Name}\n").expect("write");
    let output = Command::cargo_bin("kiln")
        .expect("kiln binary")
        .arg("-i")
        .arg(&file)
        .args(["render", "x"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("kiln.yaml:1:"),
        "{}",
        stderr(&output)
    );
}
