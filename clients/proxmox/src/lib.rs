//! kiln-proxmox: the Proxmox VE API client. It knows nothing of kiln's inventory:
//! callers hand it an endpoint, credentials and a TLS trust.
//!
//! Built on reqwest over a [`kiln_tls::Trust`] config (ring only). Every
//! mutating call returns a [`TaskHandle`]; [`ProxmoxClient::wait`] polls
//! the node named in the UPID. Errors carry the endpoint, node and VMID and
//! are classified ([`ErrorClass`]) so callers retry, re-allocate or stop.
//!
//! - Each call already retries retryable errors (bounded backoff with
//!   jitter, [`RetryPolicy`]); [`ProxmoxClient::run`] also re-dispatches a
//!   task that failed on a transient lock.
//! - Mutating calls take a slot per node and per storage ([`LimitsConfig`]);
//!   the slot travels in the [`TaskHandle`] until it is waited for, so wait
//!   for handles rather than piling them up.
//! - New VMIDs come from [`ProxmoxClient::allocate_vmid`] or, with the clone,
//!   [`ProxmoxClient::clone_new`]: reserved in-process, checked with
//!   `nextid?vmid=`, re-picked on `already exists`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_proxmox::Error> {
//! use kiln_proxmox::*;
//! let auth = Auth::token_from_str("kiln@pve!prov=00000000-0000-0000-0000-000000000000")?;
//! let pin = "AB:CD:..".parse().map_err(|e| Error::Config(format!("{e}")))?;
//! let client = ProxmoxClient::new(ClientConfig::new("https://10.0.0.2:8006", auth, kiln_tls::Trust::Pin(pin)))?;
//! let (vmid, _) = client.clone_new("pve1", 9000, &CloneOptions::default(), None).await?;
//! client.ensure_running("pve1", vmid).await?;
//! # Ok(()) }
//! ```

mod agent;
mod auth;
mod client;
mod clone;
mod cluster;
mod config;
mod create;
mod de;
mod error;
mod limits;
mod params;
mod storage;
mod task;
mod upid;
mod vm;
mod vmids;
mod wire;

#[cfg(test)]
mod fixtures;

pub use agent::{
    AddressFamily, AgentIpAddress, FileContent, NetworkInterface, choose_address, is_global_unicast,
};
pub use auth::Auth;
pub use client::{ClientConfig, ProxmoxClient, RetryPolicy};
pub use clone::CloneOptions;
pub use cluster::{NodeInfo, Version, VmResource};
pub use config::{
    AgentOption, CiCustom, IpConfig, NetDevice, VmConfig, VmConfigUpdate, encode_sshkeys,
    mac_from_net,
};
pub use create::{CreateVm, NewDisk};
pub use de::split_tags;
pub use error::{Endpoint, Error, ErrorClass, Result, Target, classify};
pub use limits::{Limits, LimitsConfig, Permits};
pub use params::Params;
pub use storage::{
    Checksum, DownloadUrl, ImportContent, StorageContent, StorageInfo, Upload, UploadSource,
};
pub use task::{TaskHandle, TaskLogLine, TaskOutcome, TaskStatus, exit_success};
pub use upid::{InvalidUpid, Upid};
pub use vm::{DeleteOptions, ShutdownOptions, VmStatus};
pub use vmids::VmidReservation;
pub use wire::seg;
