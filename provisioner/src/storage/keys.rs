//! democratic-csi's TrueNAS API key in kiln's store. TrueNAS shows a key
//! once, when it makes or resets it, so kiln stores it at that moment; a
//! store that lost it (a new kiln machine, a wiped store) gets a fresh one
//! by a reset, since the one on the NAS can never be read back.

use kiln_secrets::generated::{store_truenas_csi_key, truenas_csi_key};
use kiln_truenas::ensure::{self, StorageIds};
use secrecy::SecretString;

use super::StorageError;
use super::desired::StorageSetup;

/// After `ensure::apply`: stores the key it made, or, when the account
/// exists but the store holds no key for it, resets the key and stores
/// that. Returns whether a key was stored.
pub async fn keep_csi_key(setup: &StorageSetup, ids: &StorageIds) -> Result<bool, StorageError> {
    let Some(account) = &setup.desired.csi_account else {
        return Ok(false);
    };
    let held = truenas_csi_key(&setup.store).await?;
    let key = match (&ids.csi_api_key, &held) {
        (Some(made), _) => made.key.clone(),
        (None, Some(_)) => return Ok(false),
        (None, None) => ensure::rotate_csi_key(&setup.client, &account.username).await?,
    };
    store_truenas_csi_key(&setup.store, key, held.map(|(_, version)| version)).await?;
    tracing::info!(user = %account.username, "stored democratic-csi's TrueNAS API key");
    Ok(true)
}

/// `kiln secrets rotate generated/truenas/csi-key`: TrueNAS makes a new
/// key (the old one stops working at once) and kiln stores it. Returns the
/// store's new version.
pub async fn rotate_csi_key(setup: &StorageSetup) -> Result<u64, StorageError> {
    let Some(account) = &setup.desired.csi_account else {
        return Err(StorageError::Setting {
            field: "storage.truenas.csi_account",
            reason: "is off: kiln keeps no CSI key for this cluster".to_owned(),
        });
    };
    let held = truenas_csi_key(&setup.store).await?;
    let key: SecretString = ensure::rotate_csi_key(&setup.client, &account.username).await?;
    Ok(store_truenas_csi_key(&setup.store, key, held.map(|(_, version)| version)).await?)
}
