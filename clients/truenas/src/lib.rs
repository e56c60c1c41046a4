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
//! - [`ensure`] plans and applies what democratic-csi expects to exist;
//!   [`TruenasClient::create_check_lun`] and
//!   [`TruenasClient::create_check_share`] make `kiln storage check`'s test
//!   objects; [`initiator_name`] names nodes; [`DEMOCRATIC_CSI_ROLES`] and
//!   [`KILN_ROLES`] are the least roles for the two API keys.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_truenas::Error> {
//! use kiln_truenas::*;
//! let pin = "AB:CD:..".parse().map_err(|e| Error::Config(format!("{e}")))?;
//! let key = secrecy::SecretString::from("1-abc…".to_owned());
//! let client = TruenasClient::connect(ClientConfig::new("https://nas.lan", key, kiln_tls::Trust::Pin(pin))).await?;
//! let desired = ensure::DesiredStorage {
//!     cluster: "lab".into(),
//!     datasets: vec!["tank/k8s/lab/iscsi".into(), "tank/k8s/lab/snaps".into()],
//!     iscsi: Some(ensure::DesiredIscsi {
//!         portal: "10.0.0.5:3260".parse().map_err(|e| Error::Config(format!("{e}")))?,
//!         initiators: [initiator_name("lab", "node-1").map_err(|e| Error::Config(e.to_string()))?].into(),
//!         chap: None,
//!     }),
//!     nfs: Some(ensure::DesiredNfs {
//!         dataset: "tank/k8s/lab/nfs".into(),
//!         networks: ["10.0.0.0/24".to_owned()].into(),
//!     }),
//!     // democratic-csi's own user, privilege and key, with the least roles.
//!     csi_account: Some(ensure::DesiredCsiAccount {
//!         username: "kiln-csi-lab".into(),
//!         roles: DEMOCRATIC_CSI_ROLES.iter().map(|r| (*r).to_owned()).collect(),
//!     }),
//! };
//! let plan = ensure::plan(&client, &desired).await?;
//! for change in &plan.changes {
//!     println!("{change}"); // what `kiln plan` shows
//! }
//! let ids = ensure::apply(&client, plan).await?; // portal id, group id, CHAP tag for democratic-csi
//! if let Some(new_key) = &ids.csi_api_key {
//!     // Only when this apply made (or reset) the key: store new_key.key now.
//!     let _ = (&new_key.username, &new_key.key);
//! }
//! // `kiln secrets rotate`: a new secret for the same key; the old one stops working.
//! let rotated = ensure::rotate_csi_key(&client, "kiln-csi-lab").await?;
//! # let _ = rotated;
//! # let _ = ids;
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
    KILN_CSI_ACCOUNT_METHODS, KILN_CSI_ACCOUNT_ROLES, KILN_METHODS, KILN_ROLES, least_roles,
};
