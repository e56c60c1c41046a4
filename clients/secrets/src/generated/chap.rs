//! The iSCSI CHAP credential of the cluster's TrueNAS targets: TrueNAS takes
//! a secret of 12 to 16 characters, so it is 16 random letters and digits
//! (about 95 bits), with the cluster's name as the CHAP user.

use secrecy::SecretString;

use super::{get_or_create, random_bytes, stored};
use crate::error::SecretsError;
use crate::store::{Data, SecretStore};

pub const CHAP_ENTRY: &str = "generated/truenas/chap";
const WHAT: &str = "the iSCSI CHAP secret";
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// TrueNAS refuses CHAP secrets outside 12..=16 characters.
const SECRET_LEN: usize = 16;

#[derive(Debug, Clone)]
pub struct ChapCredential {
    pub user: String,
    pub secret: SecretString,
}

pub(super) fn generate(cluster: &str) -> Result<Data, SecretsError> {
    // Rejection sampling keeps every character equally likely.
    let mut secret = String::with_capacity(SECRET_LEN);
    for _ in 0..64 {
        let bytes = random_bytes::<32>(WHAT)?;
        for byte in bytes.iter().filter(|byte| **byte < 248) {
            if secret.len() == SECRET_LEN {
                break;
            }
            secret.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
        }
        if secret.len() == SECRET_LEN {
            return Ok(Data::from([
                ("user".to_owned(), SecretString::from(cluster.to_owned())),
                ("secret".to_owned(), SecretString::from(secret)),
            ]));
        }
    }
    Err(SecretsError::Generate {
        what: WHAT,
        reason: "the random number generator kept returning out-of-range bytes".to_owned(),
    })
}

/// The cluster's CHAP credential, created on first use.
pub async fn truenas_chap<S: SecretStore>(
    store: &S,
    cluster: &str,
) -> Result<ChapCredential, SecretsError> {
    let data = get_or_create(store, CHAP_ENTRY, || generate(cluster)).await?;
    let user = stored(&data, CHAP_ENTRY, "user", WHAT)?;
    let secret = stored(&data, CHAP_ENTRY, "secret", WHAT)?.clone();
    Ok(ChapCredential {
        user: secrecy::ExposeSecret::expose_secret(user).to_owned(),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_secret_is_sixteen_letters_or_digits_and_differs_each_time() {
        let first = generate("home").unwrap();
        let second = generate("home").unwrap();
        let secret = first["secret"].expose_secret();
        assert_eq!(secret.len(), SECRET_LEN);
        assert!(
            secret.bytes().all(|byte| byte.is_ascii_alphanumeric()),
            "{secret}"
        );
        assert_ne!(secret, second["secret"].expose_secret());
        assert_eq!(first["user"].expose_secret(), "home");
    }
}
