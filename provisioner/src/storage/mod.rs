//! TrueNAS storage in kiln's terms: the bridge from the inventory's
//! `storage.truenas` to `kiln-truenas` (what the NAS must hold) and
//! `kiln-storage` (what each node must have, and the check that proves it).
//! Nothing here talks to the NAS or a node by itself except through them.

mod check;
mod desired;
mod keys;

pub use check::{NodeCheck, ProbeOutcome, check_node, prepared_ids};
pub use desired::{StorageSetup, connect, csi_username, desired_storage};
pub use keys::{keep_csi_key, rotate_csi_key};

/// Why storage cannot be set up or checked; each names the place.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{field}`: {reason}")]
    Setting { field: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] kiln_secrets::SecretsError),
    #[error("TrueNAS: {0}")]
    Truenas(#[from] kiln_truenas::Error),
    #[error("TrueNAS is not prepared for this cluster yet ({missing}): run `kiln apply` first")]
    NotPrepared { missing: String },
}
