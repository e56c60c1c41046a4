//! kiln-lab-truenas: a TrueNAS API emulator held to the official method schemas (25.10.5).
//!
//! It speaks TrueNAS's JSON-RPC 2.0 over WebSocket (`wss://HOST/api/current`,
//! `/api/v25.10.5`, `GET /api/versions`) behind a self-signed certificate, logs in with an
//! API key, and answers the methods kiln and democratic-csi use over one in-memory pool
//! `tank`. Every call is checked against the vendored `schema/methods.json` with pydantic's
//! strictness (`schema`, `strict`), errors are shaped as the middleware shapes them (`rpc`),
//! and every change to zvols, iSCSI objects, NFS shares and services is handed to a
//! [`DataPath`] so that real servers (tgt, nfs-ganesha) can serve what the API describes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_lab_truenas::LabError> {
//! let nas = kiln_lab_truenas::start(kiln_lab_truenas::TruenasConfig::default()).await?;
//! println!("{} {} {}", nas.endpoint, nas.fingerprint, nas.api_key());
//! nas.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod calllog;
mod datapath;
mod jobs;
mod lab;
mod methods;
mod order;
mod query;
mod roles;
mod rpc;
mod schema;
mod server;
mod session;
mod state;
mod strict;
mod tgt_ganesha;

pub use calllog::LoggedCall;
pub use datapath::{
    DataPath, IscsiChap, IscsiLun, IscsiTarget, IscsiView, NfsExport, NfsView, NoDataPath,
};
pub use kiln_lab_core::LabError;
pub use lab::{Credentials, RunningTruenas, TruenasConfig, TruenasFaults, start};
pub use methods::EMULATED_METHODS;
pub use tgt_ganesha::{TgtGanesha, TgtGaneshaOptions};

/// The API version this emulator serves (`/api/v25.10.5`, and `/api/current`).
pub const API_VERSION: &str = "v25.10.5";
