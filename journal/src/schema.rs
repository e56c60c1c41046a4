//! The journal file: where it lives, how it is opened, and its schema,
//! migrated in code through SQLite's `user_version`.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::JournalError;

/// The journal's file name inside the state dir.
pub const FILE_NAME: &str = "journal.sqlite3";

/// `kiln` in ASCII: marks the file as ours for `file(1)` and for the check
/// below, which refuses someone else's database.
const APPLICATION_ID: i64 = 0x6b69_6c6e;

/// Another kiln process (a run of another cluster) may hold the write lock
/// for a moment; wait for it rather than fail. The writer thread can afford
/// to wait long, since nobody waits for it; a reader answers a person.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(60);
const READER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One entry per schema version: entry `n` takes the file from version `n`
/// to `n + 1`. Append, never edit: files in the field are at every version.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = "
CREATE TABLE runs (
    id              TEXT PRIMARY KEY NOT NULL,  -- UUID v7, hyphenated: sorts by start
    command         TEXT NOT NULL,
    cluster         TEXT NOT NULL,
    inventory_hash  TEXT NOT NULL,
    operator        TEXT NOT NULL,              -- user@host
    started_ms      INTEGER NOT NULL,           -- Unix milliseconds
    ended_ms        INTEGER,                    -- NULL: running, or the process died
    outcome         TEXT CHECK (outcome IN ('succeeded', 'failed', 'interrupted'))
) STRICT;
CREATE INDEX runs_by_time ON runs (started_ms);
CREATE INDEX runs_by_cluster ON runs (cluster, started_ms);

CREATE TABLE steps (
    seq         INTEGER PRIMARY KEY,            -- insertion order, breaks ties in time
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node        TEXT,                           -- NULL: a cluster-wide step
    step        TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    attempts    INTEGER,
    outcome     TEXT CHECK (outcome IN ('succeeded', 'failed', 'skipped')),
    error       TEXT                            -- failed: the error; skipped: why
) STRICT;
CREATE INDEX steps_by_run ON steps (run_id, started_ms);
";

/// Opens the journal for the writer, creating the state dir (0700) and the
/// file (0600) when missing.
pub fn open_for_writing(path: &Path) -> Result<Connection, JournalError> {
    // A bare file name has the empty path as parent: the current directory.
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| JournalError::io("create directory", dir, source))?;
    }
    // Created here rather than by SQLite so it is private from the start;
    // SQLite gives the -wal and -shm files the database file's mode.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| JournalError::io("create", path, source))?;
    open(path, WRITER_BUSY_TIMEOUT)
}

/// Opens an existing journal for reading; `None` when there is none yet.
/// It is opened read-write all the same: reading a WAL database needs the
/// shared-memory file, and an older schema is brought up to date first.
pub fn open_for_reading(path: &Path) -> Result<Option<Connection>, JournalError> {
    match path.try_exists() {
        Ok(true) => open(path, READER_BUSY_TIMEOUT).map(Some),
        Ok(false) => Ok(None),
        Err(source) => Err(JournalError::io("inspect", path, source)),
    }
}

fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let sqlite = |source| JournalError::sqlite(path, source);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    connection.busy_timeout(busy_timeout).map_err(sqlite)?;
    // The first statement that reads the file: a file that is not SQLite
    // fails here.
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
            reason: format!("SQLite kept journal mode `{mode}` instead of WAL"),
        });
    }
    // WAL with NORMAL survives a crash of kiln; only a power loss can drop
    // the last transactions, which a record of runs can afford.
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .and_then(|()| connection.pragma_update(None, "foreign_keys", true))
        .map_err(sqlite)?;
    migrate(&mut connection, path)?;
    Ok(connection)
}

/// Brings the file to the newest schema. The version is read again inside
/// an immediate transaction, so two kiln processes opening a new journal at
/// once do not both run a migration.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let sqlite = |source| JournalError::sqlite(path, source);
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    // The common case, checked without the write lock: `kiln runs` should
    // not queue behind a run that is writing.
    let current = connection
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .and_then(|version| {
            connection
                .pragma_query_value(None, "application_id", |row| row.get::<_, i64>(0))
                .map(|application| version == known && application == APPLICATION_ID)
        })
        .map_err(sqlite)?;
    if current {
        return Ok(());
    }
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    let version: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    let application: i64 = transaction
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(sqlite)?;
    if application != APPLICATION_ID {
        let objects: i64 = transaction
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(sqlite)?;
        if application != 0 || objects != 0 {
            return Err(JournalError::NotAJournal {
                path: path.to_owned(),
                reason: format!(
                    "an SQLite database of another program (application id {application:#x})"
                ),
            });
        }
    }
    if version < 0 {
        return Err(JournalError::NotAJournal {
            path: path.to_owned(),
            reason: format!("its schema version is {version}"),
        });
    }
    if version > known {
        return Err(JournalError::NewerSchema {
            path: path.to_owned(),
            found: version,
            known,
        });
    }
    let pending = MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(usize::MAX));
    for migration in pending {
        transaction.execute_batch(migration).map_err(sqlite)?;
    }
    if version < known {
        transaction
            .pragma_update(None, "user_version", known)
            .and_then(|()| transaction.pragma_update(None, "application_id", APPLICATION_ID))
            .map_err(sqlite)?;
    }
    transaction.commit().map_err(sqlite)
}

/// The schema version this kiln writes.
#[cfg(test)]
pub fn current_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}
