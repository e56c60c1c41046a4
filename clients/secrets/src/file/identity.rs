//! The age identity that encrypts the file stores: one per user, in the
//! config dir, apart from the stores it opens (a copy of the state dir alone
//! reveals nothing).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use age::secrecy::ExposeSecret;
use age::x25519::Identity;
use zeroize::Zeroizing;

use crate::error::SecretsError;
use crate::paths::{check_private, write_new};

const FILE_NAME: &str = "age-identity.txt";

/// The identity file under the config dir.
pub fn path(config_dir: &Path) -> PathBuf {
    config_dir.join(FILE_NAME)
}

/// The identity at `path`, checked to be private, or `None` if there is none.
pub fn load(path: &Path) -> Result<Option<Identity>, SecretsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SecretsError::io("read", path, source)),
    };
    check_private(path, "the age identity")?;
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let bad = |reason: &str| SecretsError::BadIdentity {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let key = keys
        .next()
        .ok_or_else(|| bad("it holds no AGE-SECRET-KEY line"))?;
    if keys.next().is_some() {
        return Err(bad("it holds more than one key; kiln expects exactly one"));
    }
    // The parse error of age may quote the input, so it is not passed on.
    key.parse::<Identity>()
        .map(Some)
        .map_err(|_| bad("the key line is not an age X25519 secret key"))
}

/// A new identity written to `path` (0600, in a 0700 directory). If
/// another process created one first, that one is returned instead: the
/// stores of all clusters must share one identity.
pub fn create(path: &Path) -> Result<Identity, SecretsError> {
    let identity = Identity::generate();
    let contents = Zeroizing::new(format!(
        "# kiln's age identity: it decrypts kiln's secret stores. Back it up;\n\
         # without it they cannot be read. Never share it.\n\
         # created: {}\n\
         # public key: {}\n\
         {}\n",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        identity.to_public(),
        identity.to_string().expose_secret(),
    ));
    if write_new(path, contents.as_bytes())? {
        return Ok(identity);
    }
    load(path)?.ok_or_else(|| SecretsError::BadIdentity {
        path: path.to_owned(),
        reason: "it vanished right after another process created it".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_created_identity_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let created = create(&path).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(
            created.to_public().to_string(),
            loaded.to_public().to_string()
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn garbage_is_refused_without_being_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        crate::paths::write_atomic(&path, b"AGE-SECRET-KEY-1NOTAKEYATALL-CANARY\n").unwrap();
        let Err(error) = load(&path) else {
            panic!("garbage loaded as an identity");
        };
        let error = error.to_string();
        assert!(error.contains("not an age X25519 secret key"), "{error}");
        assert!(!error.contains("CANARY"), "{error}");
    }
}
