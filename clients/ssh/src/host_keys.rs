//! Host-key verification: a host key is never trusted blindly.
//!
//! In order: (a) kiln's own known_hosts file for the cluster
//! (`<state dir>/known_hosts/<cluster>`, OpenSSH lines with `[host]:port`),
//! where kiln pins keys it learned through a trusted channel; a pinned host
//! with a different key aborts, whatever the algorithm. (b) The user's
//! `~/.ssh/known_hosts` (bare metal), with OpenSSH's rule: a different key of
//! the same algorithm aborts. (c) Trust on first use only when allowed
//! (`--trust-new-host-keys`), recorded in kiln's file. Everything else is
//! refused. Errors show fingerprints (`SHA256:…`), never key material.

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};

use crate::known_hosts::{self, Entry};

/// Why a host key was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyTrust {
    /// Pinned in kiln's known_hosts file for the cluster.
    Pinned { file: PathBuf, line: usize },
    /// Listed in the user's known_hosts.
    UserKnownHosts { file: PathBuf, line: usize },
    /// First use, allowed by the caller, and now recorded in kiln's file.
    TrustedOnFirstUse { file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error(
        "host key mismatch for {host_port}: the server presented {presented}, but {file} line {line} \
         expects {expected}. Someone may be intercepting the connection, or the host was rebuilt. \
         If you know it was rebuilt, remove line {line} from {file} \
         (`ssh-keygen -R '{host_port}' -f {file}`) and connect again",
        file = .file.display()
    )]
    Mismatch {
        host_port: String,
        presented: String,
        expected: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "host key {presented} of {host_port} is revoked ({file} line {line}); refusing to connect",
        file = .file.display()
    )]
    Revoked {
        host_port: String,
        presented: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "host key {presented} of {host_port} is not known: it is not pinned in {kiln_file}{user}. \
         kiln never trusts an unknown host key: compare the fingerprint with the host's \
         (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it) and add it to your known_hosts, \
         or allow trust on first use (--trust-new-host-keys), which records it",
        kiln_file = .kiln_file.display(),
        user = .user_file.as_ref().map(|file| format!(" and not in {}", file.display())).unwrap_or_default()
    )]
    Unknown {
        host_port: String,
        presented: String,
        kiln_file: PathBuf,
        user_file: Option<PathBuf>,
    },
    #[error("{operation} {file}: {source}", file = .file.display())]
    Io {
        operation: &'static str,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file} line {line}: the entry for {host_port} is not a valid key; fix or remove that line",
        file = .file.display()
    )]
    BadLine {
        host_port: String,
        file: PathBuf,
        line: usize,
    },
    #[error("cannot encode the host key of {host_port}: {source}")]
    Encode {
        host_port: String,
        #[source]
        source: ssh_key::Error,
    },
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Where host keys are looked up and whether unknown ones may be trusted.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    kiln_file: PathBuf,
    user_file: Option<PathBuf>,
    trust_new: bool,
}

impl HostKeyPolicy {
    /// kiln's own file for `cluster` (`<state_dir>/known_hosts/<cluster>`),
    /// no user known_hosts, no trust on first use.
    pub fn for_cluster(state_dir: &Path, cluster: &str) -> Self {
        Self {
            kiln_file: state_dir.join("known_hosts").join(cluster),
            user_file: None,
            trust_new: false,
        }
    }

    /// Also accept keys from this OpenSSH known_hosts file (usually
    /// [`user_known_hosts`]).
    pub fn with_user_known_hosts(mut self, file: Option<PathBuf>) -> Self {
        self.user_file = file;
        self
    }

    /// Trust (and record) a key for a host that no file knows yet.
    pub fn trust_new_host_keys(mut self, allow: bool) -> Self {
        self.trust_new = allow;
        self
    }

    /// kiln's known_hosts file for the cluster.
    pub fn kiln_file(&self) -> &Path {
        &self.kiln_file
    }

    /// Pins `key` for `host:port`, learned through a trusted channel (the
    /// Proxmox guest agent, or a host key kiln put into cloud-init). It
    /// replaces what was pinned for that host before: the trusted channel is
    /// authoritative (a rebuilt VM has a new key).
    pub fn pin(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), HostKeyError> {
        let host_port = known_hosts::host_pattern(host, port);
        let _change = self.lock_for_change("pinning a host key in")?;
        let text = self.read(&self.kiln_file)?.unwrap_or_default();
        let entries =
            known_hosts::entries_for(&text, host, port).map_err(|bad| HostKeyError::BadLine {
                host_port: host_port.clone(),
                file: self.kiln_file.clone(),
                line: bad.line,
            })?;
        if entries.len() == 1 && entries[0].key.key_data() == key.key_data() {
            return Ok(());
        }
        let drop: Vec<usize> = entries.iter().map(|entry| entry.line).collect();
        let mut content: String = text
            .lines()
            .enumerate()
            .filter(|(index, _)| !drop.contains(&(index + 1)))
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        let line =
            known_hosts::line_for(host, port, key).map_err(|source| HostKeyError::Encode {
                host_port: host_port.clone(),
                source,
            })?;
        content.push_str(&line);
        content.push('\n');
        known_hosts::replace_file(&self.kiln_file, &content).map_err(|source| HostKeyError::Io {
            operation: "pinning a host key in",
            file: self.kiln_file.clone(),
            source,
        })
    }

    /// Decides whether `key`, presented by `host:port`, is the host's key.
    pub fn verify(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<HostKeyTrust, HostKeyError> {
        let host_port = known_hosts::host_pattern(host, port);
        let presented = fingerprint(key);

        let pinned = self.entries(&self.kiln_file, host, port)?;
        self.reject_revoked(&pinned, key, &self.kiln_file, &host_port)?;
        if let Some(entry) = pinned.iter().find(|e| !e.revoked && same(&e.key, key)) {
            return Ok(HostKeyTrust::Pinned {
                file: self.kiln_file.clone(),
                line: entry.line,
            });
        }
        if let Some(entry) = pinned.iter().find(|e| !e.revoked) {
            return Err(mismatch(&host_port, presented, entry, &self.kiln_file));
        }

        if let Some(user_file) = &self.user_file {
            let listed = self.entries(user_file, host, port)?;
            self.reject_revoked(&listed, key, user_file, &host_port)?;
            if let Some(entry) = listed.iter().find(|e| !e.revoked && same(&e.key, key)) {
                return Ok(HostKeyTrust::UserKnownHosts {
                    file: user_file.clone(),
                    line: entry.line,
                });
            }
            if let Some(entry) = listed
                .iter()
                .find(|e| !e.revoked && e.key.algorithm() == key.algorithm())
            {
                return Err(mismatch(&host_port, presented, entry, user_file));
            }
        }

        if self.trust_new {
            let line = known_hosts::line_for(host, port, key)
                .map_err(|source| HostKeyError::Encode { host_port, source })?;
            let _change = self.lock_for_change("recording a host key trusted on first use in")?;
            known_hosts::append_line(&self.kiln_file, &line).map_err(|source| {
                HostKeyError::Io {
                    operation: "recording a host key trusted on first use in",
                    file: self.kiln_file.clone(),
                    source,
                }
            })?;
            return Ok(HostKeyTrust::TrustedOnFirstUse {
                file: self.kiln_file.clone(),
            });
        }
        Err(HostKeyError::Unknown {
            host_port,
            presented,
            kiln_file: self.kiln_file.clone(),
            user_file: self.user_file.clone(),
        })
    }

    /// Holds kiln's file still while it changes (see
    /// [`known_hosts::lock_for_change`]).
    fn lock_for_change(&self, operation: &'static str) -> Result<std::fs::File, HostKeyError> {
        known_hosts::lock_for_change(&self.kiln_file).map_err(|source| HostKeyError::Io {
            operation,
            file: self.kiln_file.clone(),
            source,
        })
    }

    fn read(&self, file: &Path) -> Result<Option<String>, HostKeyError> {
        match std::fs::read_to_string(file) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HostKeyError::Io {
                operation: "reading",
                file: file.to_owned(),
                source,
            }),
        }
    }

    fn entries(&self, file: &Path, host: &str, port: u16) -> Result<Vec<Entry>, HostKeyError> {
        let text = self.read(file)?.unwrap_or_default();
        known_hosts::entries_for(&text, host, port).map_err(|bad| HostKeyError::BadLine {
            host_port: known_hosts::host_pattern(host, port),
            file: file.to_owned(),
            line: bad.line,
        })
    }

    fn reject_revoked(
        &self,
        entries: &[Entry],
        key: &PublicKey,
        file: &Path,
        host_port: &str,
    ) -> Result<(), HostKeyError> {
        match entries.iter().find(|e| e.revoked && same(&e.key, key)) {
            Some(entry) => Err(HostKeyError::Revoked {
                host_port: host_port.to_owned(),
                presented: fingerprint(key),
                file: file.to_owned(),
                line: entry.line,
            }),
            None => Ok(()),
        }
    }
}

/// The default user known_hosts: `$HOME/.ssh/known_hosts`.
pub fn user_known_hosts() -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(".ssh").join("known_hosts"))
}

/// Same key, ignoring the comment.
fn same(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

fn mismatch(host_port: &str, presented: String, entry: &Entry, file: &Path) -> HostKeyError {
    HostKeyError::Mismatch {
        host_port: host_port.to_owned(),
        presented,
        expected: fingerprint(&entry.key),
        file: file.to_owned(),
        line: entry.line,
    }
}

#[cfg(test)]
#[path = "host_keys_tests.rs"]
mod tests;
