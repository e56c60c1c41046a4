use super::*;
use ssh_key::private::{Ed25519Keypair, PrivateKey};

fn key(seed: u8) -> PublicKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
        .public_key()
        .clone()
}

fn policy(dir: &Path) -> HostKeyPolicy {
    HostKeyPolicy::for_cluster(dir, "lab")
}

#[test]
fn the_kiln_file_lives_under_the_state_dir_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        policy(dir.path()).kiln_file(),
        dir.path().join("known_hosts/lab")
    );
}

#[test]
fn a_pinned_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    policy.pin("10.0.0.5", 22, &key(1)).unwrap();
    policy.pin("10.0.0.6", 2222, &key(2)).unwrap();
    assert_eq!(
        policy.verify("10.0.0.6", 2222, &key(2)).unwrap(),
        HostKeyTrust::Pinned {
            file: policy.kiln_file().to_owned(),
            line: 2
        }
    );
    let text = std::fs::read_to_string(policy.kiln_file()).unwrap();
    assert!(text.contains("[10.0.0.6]:2222 ssh-ed25519 "), "{text}");
}

#[test]
fn nodes_pinned_at_the_same_moment_are_all_pinned() {
    // Each node's pipeline pins its own key; nodes that boot together pin
    // at once (the real-guest test lost one that way).
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    std::thread::scope(|scope| {
        for seed in 0..24u8 {
            let policy = &policy;
            scope.spawn(move || {
                policy
                    .pin(&format!("10.0.0.{seed}"), 22, &key(seed + 1))
                    .unwrap();
            });
        }
    });
    for seed in 0..24u8 {
        assert!(
            matches!(
                policy.verify(&format!("10.0.0.{seed}"), 22, &key(seed + 1)),
                Ok(HostKeyTrust::Pinned { .. })
            ),
            "10.0.0.{seed} lost its pin"
        );
    }
}

#[test]
fn a_mismatch_aborts_showing_both_fingerprints_and_the_line_to_remove() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path()).trust_new_host_keys(true);
    policy.pin("10.0.0.5", 2222, &key(1)).unwrap();
    let error = policy.verify("10.0.0.5", 2222, &key(2)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, HostKeyError::Mismatch { line: 1, .. }));
    assert!(text.contains(&fingerprint(&key(1))), "{text}");
    assert!(text.contains(&fingerprint(&key(2))), "{text}");
    assert!(text.contains("line 1"), "{text}");
    assert!(
        text.contains(&policy.kiln_file().display().to_string()),
        "{text}"
    );
    assert!(text.contains("ssh-keygen -R '[10.0.0.5]:2222'"), "{text}");
    assert!(!text.contains("AAAA"), "no key material: {text}");
}

#[test]
fn pinning_again_replaces_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    policy.pin("a", 22, &key(1)).unwrap();
    policy.pin("b", 22, &key(3)).unwrap();
    policy.pin("a", 22, &key(2)).unwrap();
    policy.pin("a", 22, &key(2)).unwrap();
    assert!(policy.verify("a", 22, &key(1)).is_err());
    assert!(policy.verify("a", 22, &key(2)).is_ok());
    assert!(policy.verify("b", 22, &key(3)).is_ok());
    let text = std::fs::read_to_string(policy.kiln_file()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn an_unknown_key_is_refused_without_trust_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let error = policy.verify("10.0.0.9", 22, &key(4)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, HostKeyError::Unknown { .. }));
    assert!(text.contains(&fingerprint(&key(4))), "{text}");
    assert!(text.contains("--trust-new-host-keys"), "{text}");
    assert!(!policy.kiln_file().exists(), "nothing recorded");
}

#[test]
fn trust_on_first_use_records_the_key_and_then_pins_it() {
    let dir = tempfile::tempdir().unwrap();
    let tofu = policy(dir.path()).trust_new_host_keys(true);
    assert_eq!(
        tofu.verify("h", 2200, &key(5)).unwrap(),
        HostKeyTrust::TrustedOnFirstUse {
            file: tofu.kiln_file().to_owned()
        }
    );
    let strict = policy(dir.path());
    assert!(matches!(
        strict.verify("h", 2200, &key(5)).unwrap(),
        HostKeyTrust::Pinned { line: 1, .. }
    ));
    assert!(matches!(
        tofu.verify("h", 2200, &key(6)).unwrap_err(),
        HostKeyError::Mismatch { .. }
    ));
}

#[test]
fn the_users_known_hosts_is_used_with_openssh_rules() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user_known_hosts");
    std::fs::write(
        &user,
        format!(
            "# mine\nmetal {}\n",
            known_hosts::line_for("x", 22, &key(7))
                .unwrap()
                .trim_start_matches("x ")
        ),
    )
    .unwrap();
    let policy = policy(dir.path()).with_user_known_hosts(Some(user.clone()));
    assert_eq!(
        policy.verify("metal", 22, &key(7)).unwrap(),
        HostKeyTrust::UserKnownHosts {
            file: user.clone(),
            line: 2
        }
    );
    let error = policy.verify("metal", 22, &key(8)).unwrap_err().to_string();
    assert!(error.contains(&fingerprint(&key(7))), "{error}");
    assert!(error.contains(&fingerprint(&key(8))), "{error}");
    assert!(
        error.contains(&format!("{} line 2", user.display())),
        "{error}"
    );
}

#[test]
fn a_pin_wins_over_the_users_known_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user_known_hosts");
    std::fs::write(
        &user,
        format!("{}\n", known_hosts::line_for("h", 22, &key(1)).unwrap()),
    )
    .unwrap();
    let policy = policy(dir.path()).with_user_known_hosts(Some(user));
    policy.pin("h", 22, &key(2)).unwrap();
    assert!(matches!(
        policy.verify("h", 22, &key(1)).unwrap_err(),
        HostKeyError::Mismatch { .. }
    ));
}

#[test]
fn a_revoked_key_is_refused_even_with_trust_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user_known_hosts");
    std::fs::write(
        &user,
        format!(
            "@revoked {}\n",
            known_hosts::line_for("h", 22, &key(9)).unwrap()
        ),
    )
    .unwrap();
    let policy = policy(dir.path())
        .with_user_known_hosts(Some(user))
        .trust_new_host_keys(true);
    assert!(matches!(
        policy.verify("h", 22, &key(9)).unwrap_err(),
        HostKeyError::Revoked { line: 1, .. }
    ));
}
