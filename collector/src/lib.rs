//! The collector behind `kiln serve`: agents' reports in over HTTPS, node
//! states, `/metrics` and a status page out. Details: `docs/collector.md`.
//!
//! - [`tokens`]: the per-node bearer tokens (hashed), usable without a
//!   running server;
//! - `token_cache`: tokens already verified, by hash (the store re-checks
//!   each report's token in its transaction);
//! - [`store`]: latest report and bounded history per node in SQLite;
//! - [`state`]: a node's state from its latest report (pure);
//! - [`nodes`]: the running collector's in-memory view, rate budgets and
//!   sequence numbers;
//! - [`server`]: the axum router and the HTTPS accept loop;
//! - [`metrics`], [`page`]: what the reads render;
//! - [`identity`]: the TLS certificate, the cluster's own (from the secrets store) or the user's;
//! - [`client`]: what `kiln status` uses to read the listing.

pub mod client;
mod db;
mod error;
pub mod identity;
pub mod metrics;
pub mod nodes;
pub mod page;
pub mod server;
pub mod state;
pub mod store;
mod token_cache;
pub mod tokens;

pub use client::fetch_nodes;
pub use db::{DB_FILE, collector_dir, default_db_path};
pub use error::CollectorError;
pub use identity::CollectorIdentity;
pub use nodes::{NodeView, NodesResponse, RateLimit};
pub use server::{Collector, CollectorConfig, METRICS_PATH, NODES_PATH};
pub use state::{NodeState, node_state};
pub use store::{ReportStore, Retention, Saved, StoredReport};
pub use tokens::{NodeIdentity, TOKEN_PREFIX, TokenHash, TokenRegistry, VerifiedToken};
