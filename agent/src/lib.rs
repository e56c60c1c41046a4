//! The kiln health agent: the checks it runs on a host, the reports it sends, and the wire
//! types the collector (`kiln serve`) shares with it.
//!
//! The contract between the three parties that meet here:
//! - [`report`]: what an agent POSTs to [`report::REPORTS_PATH`] and the collector stores;
//! - [`config`]: the file `kiln agent install` (or the engine's deploy step) writes on a host
//!   and `kiln-agent run --config FILE` reads;
//! - [`SYSTEMD_UNIT`]: the unit the deploy step installs.
//!
//! The agent itself: [`checks`] read the host, [`agent::Agent`] numbers ([`sequence`]),
//! sends ([`sender`]) and spools ([`spool`]) the reports.

pub mod agent;
pub mod checks;
pub mod config;
mod files;
pub mod report;
pub mod sender;
pub mod sequence;
pub mod spool;

pub use files::StateError;

/// The hardened systemd unit for `kiln-agent run` (see `docs/agent.md`).
pub const SYSTEMD_UNIT: &str = include_str!("../systemd/kiln-agent.service");
