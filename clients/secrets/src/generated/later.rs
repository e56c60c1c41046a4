//! Slots for batch 2, designed now so their secrets land where the others
//! are: the Talos secrets bundle (made by the Talos bootstrap, which knows
//! its format) and the Flux deploy key (imported, never generated: the Git
//! host must know its public half).

use secrecy::SecretString;

use super::ssh::SshKeyPair;
use super::{get_or_create, stored};
use crate::error::SecretsError;
use crate::store::{Cas, Data, SecretStore};

pub const TALOS_ENTRY: &str = "generated/talos/secrets";
pub const FLUX_ENTRY: &str = "generated/flux/deploy-key";

/// The Talos secrets bundle (`talosctl gen secrets` YAML): `generate` runs
/// only the first time; every later call returns the stored bundle, so a
/// rebuilt Talos cluster keeps its PKI.
pub async fn talos_secrets_bundle<S: SecretStore>(
    store: &S,
    generate: impl FnOnce() -> Result<SecretString, SecretsError>,
) -> Result<SecretString, SecretsError> {
    let data = get_or_create(store, TALOS_ENTRY, || {
        Ok(Data::from([("bundle".to_owned(), generate()?)]))
    })
    .await?;
    Ok(stored(&data, TALOS_ENTRY, "bundle", "the Talos secrets bundle")?.clone())
}

/// Stores the Flux deploy key (an OpenSSH private key whose public half is
/// a deploy key on the Git host); returns its public key to show the user.
pub async fn import_flux_deploy_key<S: SecretStore>(
    store: &S,
    private_key: &SecretString,
) -> Result<String, SecretsError> {
    let pair =
        SshKeyPair::from_private(private_key).map_err(|reason| SecretsError::BadStoredValue {
            what: "the Flux deploy key",
            name: FLUX_ENTRY.to_owned(),
            reason,
        })?;
    let data = Data::from([
        ("private_key".to_owned(), private_key.clone()),
        (
            "public_key".to_owned(),
            SecretString::from(pair.public_key.as_str()),
        ),
    ]);
    store.write(FLUX_ENTRY, data, Cas::Any).await?;
    Ok(pair.public_key)
}

/// The imported Flux deploy key, if one was imported.
pub async fn flux_deploy_key<S: SecretStore>(
    store: &S,
) -> Result<Option<SshKeyPair>, SecretsError> {
    let Some(entry) = store.read(FLUX_ENTRY).await? else {
        return Ok(None);
    };
    let private = stored(
        &entry.data,
        FLUX_ENTRY,
        "private_key",
        "the Flux deploy key",
    )?;
    SshKeyPair::from_private(private)
        .map(Some)
        .map_err(|reason| SecretsError::BadStoredValue {
            what: "the Flux deploy key",
            name: FLUX_ENTRY.to_owned(),
            reason,
        })
}
