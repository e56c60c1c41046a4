//! kiln-truenas: kiln's TrueNAS client. It knows nothing of kiln's
//! inventory: callers hand it an endpoint, an API key and a TLS trust, and
//! (for [`ensure`]) a plain [`ensure::DesiredStorage`].
//!
//! - Transport: JSON-RPC 2.0 over one WebSocket at `wss://host/api/<v>`,
//!   where `<v>` is [`PINNED_API_VERSION`] when `GET /api/versions` lists
//!   it, else `current`; TLS from [`kiln_tls::Trust`] (a pin names both
//!   fingerprints when it does not match) with ALPN `http/1.1` only.
//! - Login with the API key on every (re)connection; the key is a
//!   [`secrecy::SecretString`] and appears in no Debug, error or log line.
//! - Calls run concurrently over the one socket; `-32000` is retried with
//!   backoff; a dropped socket is reopened once, and only calls that read
//!   are resent ([`Error::ReplyLost`] for the others).
//! - Errors are classified ([`Error`]): `-32602` keeps every
//!   `attribute: message`, `-32001` its errname and reason, jobs their error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_truenas::Error> {
//! use kiln_truenas::*;
//! let pin = "AB:CD:..".parse().map_err(|e| Error::Config(format!("{e}")))?;
//! let key = secrecy::SecretString::from("1-abc…".to_owned());
//! let client = TruenasClient::connect(ClientConfig::new("https://nas.lan", key, kiln_tls::Trust::Pin(pin))).await?;
//! println!("{}", client.system_version().await?);
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod check;
mod client;
mod endpoint;
pub mod ensure;
mod error;
mod iqn;
mod jobs;
mod roles;
mod rpc;
mod wire;

pub use api::*;
pub use check::{CheckLun, CheckLunRequest, CheckShare};
pub use client::{ClientConfig, RetryPolicy, TruenasClient};
pub use endpoint::{CURRENT_API_VERSION, PINNED_API_VERSION};
pub use error::{Error, FieldError, Result};
pub use iqn::{IqnError, KILN_IQN_AUTHORITY, MAX_IQN_LENGTH, initiator_name, is_valid_iqn};
pub use roles::{
    DEMOCRATIC_CSI_METHODS, DEMOCRATIC_CSI_METHODS_WITHOUT_SCHEMA, DEMOCRATIC_CSI_ROLES,
    KILN_METHODS, KILN_ROLES, least_roles,
};
