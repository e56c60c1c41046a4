//! Crash-safe writes for the agent's state: a reader sees the old file or the new one,
//! never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the state dir could not be used; names the path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct StateError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl StateError {
    pub(crate) fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates `dir` (mode 0700) and its parents if they are missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| StateError::new("cannot create", dir, error))
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path`
/// and fsyncs the directory, so the rename itself survives a power cut.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|error| StateError::new("cannot create", &temporary, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| StateError::new("cannot write", &temporary, error))?;
    fs::rename(&temporary, path)
        .map_err(|error| StateError::new("cannot rename onto", path, error))?;
    sync_parent(path)
}

pub(crate) fn sync_parent(path: &Path) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| StateError::new("cannot sync", dir, error))
}
