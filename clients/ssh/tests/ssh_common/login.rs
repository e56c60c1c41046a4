//! A logged-in client fixture: a real sshd that accepts a fresh client key,
//! and kiln's pinned trust in its host key.

use std::path::PathBuf;

use kiln_ssh::{HostKeyPolicy, KeySource, Session, SshTarget, Timeouts};
use secrecy::SecretString;
use ssh_key::PublicKey;

use super::{Sshd, keygen, login_user};

/// A running sshd that accepts a fresh client key, and kiln's trust in it.
pub struct Fixture {
    pub sshd: Sshd,
    pub key: PathBuf,
    pub state: tempfile::TempDir,
}

impl Fixture {
    pub fn start() -> Option<Self> {
        let sshd = Sshd::start()?;
        let state = tempfile::tempdir().unwrap();
        let key = state.path().join("client_key");
        keygen(&key);
        sshd.authorize(&key);
        let host_key = PublicKey::read_openssh_file(sshd.host_public_key()).unwrap();
        policy(&state)
            .pin("127.0.0.1", sshd.port, &host_key)
            .unwrap();
        Some(Self { sshd, key, state })
    }

    pub fn target(&self) -> SshTarget {
        SshTarget::new("test-node", "127.0.0.1", login_user()).with_port(self.sshd.port)
    }

    /// The key as the secrets store hands it over: OpenSSH text in memory.
    pub fn key_source(&self) -> KeySource {
        KeySource::Secret(SecretString::from(
            std::fs::read_to_string(&self.key).unwrap(),
        ))
    }

    pub fn policy(&self) -> HostKeyPolicy {
        policy(&self.state)
    }

    pub async fn connect(&self) -> Session {
        Session::connect(
            &self.target(),
            &self.key_source(),
            &self.policy(),
            &Timeouts::default(),
        )
        .await
        .unwrap()
    }
}

pub fn policy(state: &tempfile::TempDir) -> HostKeyPolicy {
    HostKeyPolicy::for_cluster(state.path(), "lab")
}
