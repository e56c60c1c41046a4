//! The collector's SQLite file: where it lives, how it is opened, and its
//! schema, migrated in code through `user_version`. Tokens and reports share
//! it, so `kiln agent token` on the same machine issues into the registry a
//! running `kiln serve` checks.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::CollectorError;
use kiln_secrets::Dirs;

/// The database's file name inside [`collector_dir`].
pub const DB_FILE: &str = "collector.db";

/// A `kiln agent token` and the server's writer may want the write lock at
/// the same moment; each holds it for milliseconds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Entry `n` takes the file from version `n` to `n + 1`. Append, never edit.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = "
CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- a new id per issue: the sequence space
    cluster       TEXT NOT NULL,
    node          TEXT NOT NULL,
    sha256        BLOB NOT NULL UNIQUE,
    issued_at_ms  INTEGER NOT NULL,
    UNIQUE (cluster, node)
) STRICT;

CREATE TABLE latest (
    cluster         TEXT NOT NULL,
    node            TEXT NOT NULL,
    token_id        INTEGER NOT NULL,
    sequence        INTEGER NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    report          TEXT NOT NULL,                    -- the report's JSON
    PRIMARY KEY (cluster, node)
) STRICT;

CREATE TABLE history (
    id              INTEGER PRIMARY KEY,
    cluster         TEXT NOT NULL,
    node            TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    report          TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_node ON history (cluster, node, id);
CREATE INDEX history_by_time ON history (received_at_ms);
";

/// `<state>/collector`: the database, and kiln's own certificate and key.
pub fn collector_dir(dirs: &Dirs) -> PathBuf {
    dirs.state.join("collector")
}

/// `<state>/collector/collector.db`.
pub fn default_db_path() -> Result<PathBuf, CollectorError> {
    Ok(collector_dir(&Dirs::from_env()?).join(DB_FILE))
}

/// Creates `dir` (and parents) readable by its owner only.
pub(crate) fn private_dir(dir: &Path) -> Result<(), CollectorError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CollectorError::io("create directory", dir, source))
}

/// Opens (creating it 0600 in a 0700 directory when missing) and migrates
/// the database at `path`: WAL, `synchronous=NORMAL`.
pub(crate) fn open(path: &Path) -> Result<Connection, CollectorError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    // Created here, not by SQLite, so it is private from the start; SQLite
    // gives the -wal and -shm files the same mode.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| CollectorError::io("create", path, source))?;
    let mut connection = Connection::open(path).map_err(CollectorError::sqlite(path))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| connection.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| connection.pragma_update(None, "synchronous", "NORMAL"))
        .map_err(CollectorError::sqlite(path))?;
    migrate(&mut connection, path)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), CollectorError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(CollectorError::sqlite(path))?;
    let version: i64 = transaction
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(CollectorError::sqlite(path))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(CollectorError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known,
        });
    }
    let done = usize::try_from(version).unwrap_or(0);
    for migration in &MIGRATIONS[done..] {
        transaction
            .execute_batch(migration)
            .map_err(CollectorError::sqlite(path))?;
    }
    transaction
        .pragma_update(None, "user_version", known)
        .and_then(|()| transaction.commit())
        .map_err(CollectorError::sqlite(path))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// SQLite stores integers as i64; kiln's times and sequence numbers fit.
pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
