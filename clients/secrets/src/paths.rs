//! Where kiln keeps its state and configuration, and the file hygiene every
//! secret file gets: private directories, 0600 files, atomic replacement.

use std::fs::{self, DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::SecretsError;

/// The two directories kiln uses for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// The encrypted store and the lock files live here.
    pub state: PathBuf,
    /// The age identity lives here, apart from what it decrypts.
    pub config: PathBuf,
}

impl Dirs {
    /// `$KILN_STATE_DIR`, else `$XDG_STATE_HOME/kiln`, else
    /// `~/.local/state/kiln`; the same pattern for the config dir.
    pub fn from_env() -> Result<Self, SecretsError> {
        Ok(Self {
            state: dir_from_env("KILN_STATE_DIR", "XDG_STATE_HOME", ".local/state")?,
            config: dir_from_env("KILN_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")?,
        })
    }
}

fn dir_from_env(own: &str, xdg: &str, home_relative: &str) -> Result<PathBuf, SecretsError> {
    let non_empty = |var: &str| std::env::var_os(var).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty(own) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty(xdg) {
        return Ok(PathBuf::from(dir).join("kiln"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(home_relative).join("kiln")),
        None => Err(SecretsError::NoHome {
            variable: own.to_owned(),
        }),
    }
}

/// Creates `dir` (and missing parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<(), SecretsError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SecretsError::io("create directory", dir, source))
}

/// Refuses a file that group or others may read or write: a key that other
/// users can read is no longer the operator's alone.
pub fn check_private(path: &Path, what: &'static str) -> Result<(), SecretsError> {
    let metadata =
        fs::metadata(path).map_err(|source| SecretsError::io("inspect", path, source))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::NotPrivate {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Replaces `path` with `contents` so that a crash leaves either the old or
/// the new file, never a torn one: a 0600 temp file in the same directory,
/// fsync, rename, then fsync of the directory so the rename is durable.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SecretsError> {
    let temp = synced_temp(path, contents)?;
    temp.persist(path)
        .map_err(|error| SecretsError::io("replace", path, error.error))?;
    sync_dir(path)
}

/// Like [`write_atomic`], but never replaces an existing file: returns
/// `false` (and writes nothing) when `path` already exists, so two
/// processes creating the same file at once keep the first one.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<bool, SecretsError> {
    let temp = synced_temp(path, contents)?;
    match temp.persist_noclobber(path) {
        Ok(_) => sync_dir(path).map(|()| true),
        Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(SecretsError::io("create", path, error.error)),
    }
}

fn synced_temp(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile, SecretsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".kiln-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|source| SecretsError::io("create a temporary file in", dir, source))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|source| SecretsError::io("write", temp.path(), source))?;
    Ok(temp)
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> Result<(), SecretsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| SecretsError::io("sync directory", dir, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_and_replace_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/store.age");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let leftovers = fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file is left behind");
    }

    #[test]
    fn write_new_keeps_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        assert!(write_new(&path, b"first").unwrap());
        assert!(!write_new(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_group_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = check_private(&path, "age identity")
            .unwrap_err()
            .to_string();
        assert!(error.contains("0640"), "{error}");
        assert!(error.contains("chmod 600"), "{error}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        check_private(&path, "age identity").unwrap();
    }
}
