//! Host-key verification against the key a real OpenSSH sshd presents:
//! `ssh-keyscan` reads it off the wire, in plain and hashed known_hosts form,
//! and kiln's fingerprints must equal ssh-keygen's.

mod ssh_common;

use std::path::Path;
use std::process::Command;

use kiln_ssh::{HostKeyError, HostKeyPolicy, HostKeyTrust, fingerprint};
use ssh_common::{Sshd, keygen, keygen_fingerprint};
use ssh_key::PublicKey;

fn keyscan(port: u16, hashed: bool) -> String {
    let mut command = Command::new("ssh-keyscan");
    command.args(["-T", "5", "-t", "ed25519", "-p", &port.to_string()]);
    if hashed {
        command.arg("-H");
    }
    let output = command.arg("127.0.0.1").output().expect("ssh-keyscan runs");
    assert!(output.status.success(), "ssh-keyscan failed");
    let text = String::from_utf8(output.stdout).expect("ssh-keyscan prints UTF-8");
    assert!(text.contains("ssh-ed25519"), "no key scanned: {text}");
    text
}

fn public(path: &Path) -> PublicKey {
    PublicKey::read_openssh_file(path).expect("an OpenSSH public key file")
}

#[test]
fn the_scanned_host_key_verifies_plain_and_hashed() {
    let Some(sshd) = Sshd::start() else { return };
    let host_key = public(&sshd.host_public_key());
    for hashed in [false, true] {
        let state = tempfile::tempdir().unwrap();
        let user = state.path().join("user_known_hosts");
        std::fs::write(&user, keyscan(sshd.port, hashed)).unwrap();
        let policy = HostKeyPolicy::for_cluster(state.path(), "lab")
            .with_user_known_hosts(Some(user.clone()));
        let trust = policy.verify("127.0.0.1", sshd.port, &host_key).unwrap();
        assert!(
            matches!(trust, HostKeyTrust::UserKnownHosts { ref file, .. } if *file == user),
            "{trust:?}"
        );
    }
}

#[test]
fn another_key_for_the_scanned_host_aborts_with_ssh_keygens_fingerprints() {
    let Some(sshd) = Sshd::start() else { return };
    let state = tempfile::tempdir().unwrap();
    let impostor = state.path().join("impostor");
    keygen(&impostor);
    let user = state.path().join("user_known_hosts");
    std::fs::write(&user, keyscan(sshd.port, false)).unwrap();
    let policy = HostKeyPolicy::for_cluster(state.path(), "lab")
        .with_user_known_hosts(Some(user))
        .trust_new_host_keys(true);
    let impostor_key = public(&impostor.with_extension("pub"));
    let error = policy
        .verify("127.0.0.1", sshd.port, &impostor_key)
        .unwrap_err();
    assert!(matches!(error, HostKeyError::Mismatch { .. }), "{error}");
    let text = error.to_string();
    let expected = keygen_fingerprint(&sshd.host_public_key());
    let presented = keygen_fingerprint(&impostor.with_extension("pub"));
    assert_eq!(fingerprint(&impostor_key), presented);
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains(&presented), "{text}");
    assert!(!policy.kiln_file().exists(), "a mismatch records nothing");
}

#[test]
fn a_pinned_real_host_key_verifies_and_survives_a_new_policy() {
    let Some(sshd) = Sshd::start() else { return };
    let state = tempfile::tempdir().unwrap();
    let host_key = public(&sshd.host_public_key());
    HostKeyPolicy::for_cluster(state.path(), "lab")
        .pin("127.0.0.1", sshd.port, &host_key)
        .unwrap();
    let policy = HostKeyPolicy::for_cluster(state.path(), "lab");
    assert!(matches!(
        policy.verify("127.0.0.1", sshd.port, &host_key).unwrap(),
        HostKeyTrust::Pinned { line: 1, .. }
    ));
    let pinned = std::fs::read_to_string(policy.kiln_file()).unwrap();
    let scanned = keyscan(sshd.port, false);
    let scanned_line = scanned.lines().find(|line| !line.starts_with('#')).unwrap();
    assert_eq!(
        pinned.trim_end(),
        scanned_line.trim_end(),
        "same line as OpenSSH writes"
    );
}
