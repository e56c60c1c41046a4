//! SSH to the cluster's hosts. So far: host-key verification
//! ([`HostKeyPolicy`]); the russh client (connect, exec, upload) builds on it.

mod host_keys;
mod known_hosts;

pub use host_keys::{HostKeyError, HostKeyPolicy, HostKeyTrust, fingerprint, user_known_hosts};
