//! The TrueNAS API key of the cluster's CSI driver. TrueNAS makes it (only
//! TrueNAS can: the key is its own record), so kiln does not generate it:
//! it keeps the key TrueNAS returned when kiln created or reset it, and
//! rotating it means asking TrueNAS for a new one.

use secrecy::SecretString;

use super::stored;
use crate::error::SecretsError;
use crate::store::{Cas, Data, SecretStore};

pub const CSI_KEY_ENTRY: &str = "generated/truenas/csi-key";
const WHAT: &str = "the CSI driver's TrueNAS API key";

/// The stored key and the version it was read at, if kiln holds one.
pub async fn truenas_csi_key<S: SecretStore>(
    store: &S,
) -> Result<Option<(SecretString, u64)>, SecretsError> {
    let Some(entry) = store.read(CSI_KEY_ENTRY).await? else {
        return Ok(None);
    };
    let key = stored(&entry.data, CSI_KEY_ENTRY, "key", WHAT)?.clone();
    Ok(Some((key, entry.meta.version)))
}

/// Keeps a key TrueNAS just returned, replacing version `replaces` (or
/// creating the entry); returns the new version.
pub async fn store_truenas_csi_key<S: SecretStore>(
    store: &S,
    key: SecretString,
    replaces: Option<u64>,
) -> Result<u64, SecretsError> {
    let cas = replaces.map_or(Cas::Absent, Cas::Version);
    store
        .write(CSI_KEY_ENTRY, Data::from([("key".to_owned(), key)]), cas)
        .await
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::{Dirs, FileStore};

    #[tokio::test]
    async fn a_key_is_kept_and_replaced_only_at_the_version_read() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: root.path().join("state"),
            config: root.path().join("config"),
        };
        let store = FileStore::new(&dirs, "home");
        assert!(truenas_csi_key(&store).await.unwrap().is_none());
        let first = store_truenas_csi_key(&store, SecretString::from("1-aaa"), None)
            .await
            .unwrap();
        let (key, version) = truenas_csi_key(&store).await.unwrap().unwrap();
        assert_eq!(key.expose_secret(), "1-aaa");
        assert_eq!(version, first);
        let second = store_truenas_csi_key(&store, SecretString::from("1-bbb"), Some(version))
            .await
            .unwrap();
        assert!(second > first);
        assert!(
            store_truenas_csi_key(&store, SecretString::from("1-ccc"), Some(version))
                .await
                .is_err(),
            "a stale version is refused"
        );
        assert_eq!(
            truenas_csi_key(&store)
                .await
                .unwrap()
                .unwrap()
                .0
                .expose_secret(),
            "1-bbb"
        );
    }
}
