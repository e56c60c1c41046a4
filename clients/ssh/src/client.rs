//! One SSH connection to one host: TCP and handshake under a timeout, the
//! host key checked by [`HostKeyPolicy`], key auth, keep-alive on. Commands
//! and uploads on it live in `exec.rs` and `upload.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{Channel, Disconnect};
use tokio::time::{Instant, timeout};

use crate::auth::{KeySource, authenticate};
use crate::error::SshError;
use crate::host_keys::{HostKeyError, HostKeyPolicy};

/// A host to log in to, and the kiln node it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The inventory's node name, for messages.
    pub node: String,
}

impl SshTarget {
    /// `user@host` on port 22.
    pub fn new(node: impl Into<String>, host: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: 22,
            user: user.into(),
            node: node.into(),
        }
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}:{} (node {})",
            self.user, self.host, self.port, self.node
        )
    }
}

/// How long each phase may take. Keep-alive finds a dead peer after about
/// `keepalive * 3` of silence, so a quiet long command is not cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, SSH handshake and host-key check together.
    pub connect: Duration,
    /// Logging in once connected.
    pub auth: Duration,
    /// One command or one upload, start to end.
    pub command: Duration,
    /// Interval of keep-alive probes when the server is silent.
    pub keepalive: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            auth: Duration::from_secs(15),
            command: Duration::from_secs(600),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Unanswered keep-alives before the connection counts as dead.
const KEEPALIVE_MAX: usize = 3;
/// Bound on the courtesy messages sent while tearing down (close, disconnect).
pub(super) const TEARDOWN: Duration = Duration::from_secs(5);

/// An authenticated SSH connection. Every command opens its own channel and
/// closes it again, also on error and timeout.
pub struct Session {
    handle: Handle<Verifier>,
    target: SshTarget,
    at: String,
    timeouts: Timeouts,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to `target`, verifies its host key with `policy` and logs in
    /// with `key`.
    pub async fn connect(
        target: &SshTarget,
        key: &KeySource,
        policy: &HostKeyPolicy,
        timeouts: &Timeouts,
    ) -> Result<Self, SshError> {
        let at = target.to_string();
        let mut handle = handshake(target, &at, policy, timeouts).await?;
        let auth = timeout(
            timeouts.auth,
            authenticate(&mut handle, &at, &target.user, key),
        )
        .await;
        let failure = match auth {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some(SshError::Timeout {
                at: at.clone(),
                step: format!("auth as {}", target.user),
                timeout: timeouts.auth,
            }),
        };
        if let Some(error) = failure {
            disconnect(&handle).await;
            return Err(error);
        }
        tracing::debug!(target = %at, "ssh: logged in");
        Ok(Self {
            handle,
            target: target.clone(),
            at,
            timeouts: *timeouts,
        })
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Ends the connection politely.
    pub async fn close(self) {
        disconnect(&self.handle).await;
    }

    /// `user@host:port (node NAME)`, the prefix of every error.
    pub(super) fn at(&self) -> &str {
        &self.at
    }

    pub(super) async fn open_channel(&self, step: &str) -> Result<Channel<client::Msg>, SshError> {
        match timeout(self.timeouts.connect, self.handle.channel_open_session()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(source)) => Err(SshError::Protocol {
                at: self.at.clone(),
                step: format!("{step}: open a channel"),
                source: Box::new(source),
            }),
            Err(_) => Err(SshError::Timeout {
                at: self.at.clone(),
                step: format!("{step}: open a channel"),
                timeout: self.timeouts.connect,
            }),
        }
    }
}

/// Polls until SSH answers and the login works, for at most `patience`;
/// the engine's "wait for SSH" step. A refused or silent port and a
/// rejected key (cloud-init may not have installed it yet) are retried with
/// a growing pause; a host key that does not verify ends the wait at once.
pub async fn wait_for_ssh(
    target: &SshTarget,
    key: &KeySource,
    policy: &HostKeyPolicy,
    timeouts: &Timeouts,
    patience: Duration,
) -> Result<Session, SshError> {
    const FIRST_PAUSE: Duration = Duration::from_millis(250);
    const LONGEST_PAUSE: Duration = Duration::from_secs(5);
    let started = Instant::now();
    let deadline = started + patience;
    let mut pause = FIRST_PAUSE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = Timeouts {
            connect: timeouts.connect.min(left),
            auth: timeouts.auth.min(left),
            ..*timeouts
        };
        let error = match Session::connect(target, key, policy, &attempt).await {
            Ok(session) => return Ok(session),
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => error,
        };
        tracing::debug!(target = %target, attempts, %error, "ssh: not up yet");
        if Instant::now() + pause >= deadline {
            return Err(SshError::WaitTimedOut {
                at: target.to_string(),
                waited: started.elapsed(),
                attempts,
                last: Box::new(error),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

async fn handshake(
    target: &SshTarget,
    at: &str,
    policy: &HostKeyPolicy,
    timeouts: &Timeouts,
) -> Result<Handle<Verifier>, SshError> {
    let config = Arc::new(client::Config {
        keepalive_interval: Some(timeouts.keepalive),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        ..client::Config::default()
    });
    let verifier = Verifier {
        host: target.host.clone(),
        port: target.port,
        policy: policy.clone(),
    };
    let connect = async {
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| SshError::Connect {
                at: at.to_owned(),
                source,
            })?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "ssh: TCP_NODELAY not set");
        }
        client::connect_stream(config, stream, verifier)
            .await
            .map_err(|error| match error {
                HandshakeError::HostKey(source) => SshError::HostKey {
                    at: at.to_owned(),
                    source: Box::new(source),
                },
                HandshakeError::Russh(source) => SshError::Handshake {
                    at: at.to_owned(),
                    source: Box::new(source),
                },
            })
    };
    timeout(timeouts.connect, connect)
        .await
        .map_err(|_| SshError::Timeout {
            at: at.to_owned(),
            step: "connect".to_owned(),
            timeout: timeouts.connect,
        })?
}

async fn disconnect(handle: &Handle<Verifier>) {
    let bye = handle.disconnect(Disconnect::ByApplication, "", "en");
    if let Ok(Err(error)) = timeout(TEARDOWN, bye).await {
        tracing::debug!(%error, "ssh: disconnect");
    }
}

/// Checks the server's host key during the handshake.
struct Verifier {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
}

#[derive(Debug)]
enum HandshakeError {
    Russh(russh::Error),
    HostKey(HostKeyError),
}

impl From<russh::Error> for HandshakeError {
    fn from(error: russh::Error) -> Self {
        Self::Russh(error)
    }
}

impl client::Handler for Verifier {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate carries the host's key; it is that key kiln
        // pins, so the certificate's CA plays no part.
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::new(certificate.public_key().clone(), "")
            }
        };
        let trust = self
            .policy
            .verify(&self.host, self.port, &key)
            .map_err(HandshakeError::HostKey)?;
        tracing::debug!(host = %self.host, port = self.port, ?trust, "ssh: host key verified");
        Ok(true)
    }
}
