//! SSH to the cluster's hosts: host-key verification ([`HostKeyPolicy`]),
//! and a russh client on top of it ([`Session`]): connect with timeouts and
//! keep-alive, key auth (secrets store, file, ssh-agent), commands with
//! separate stdout/stderr and exit status, atomic uploads, sudo.

mod auth;
mod client;
mod command;
mod error;
mod exec;
mod host_keys;
mod known_hosts;
mod upload;

pub use auth::KeySource;
pub use client::{Session, SshTarget, Timeouts, wait_for_ssh};
pub use command::{ExecOutput, ExitStatus, NulInArgument, Output, Privilege, shell_line};
pub use error::SshError;
pub use host_keys::{HostKeyError, HostKeyPolicy, HostKeyTrust, fingerprint, user_known_hosts};
pub use upload::{UploadFile, UploadSource, Uploaded};
