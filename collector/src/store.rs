//! Reports on disk: each node's latest and a bounded history, in the
//! collector's SQLite file. One thread writes, in batches (one transaction
//! for whatever arrived meanwhile), so the ingest path never waits for a
//! disk on the async runtime and a burst costs one commit, not hundreds.
//! Each report's token is checked against the registry in the transaction
//! that stores it. Another thread checkpoints the WAL into the database, so
//! the checkpoint's fsyncs do not stall the writer (and every report
//! waiting for its commit).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kiln_agent::report::Report;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use crate::db::{self, from_sql, now_ms, to_sql};
use crate::error::CollectorError;
use crate::tokens::NodeIdentity;

/// How much history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Reports kept per node, newest first.
    pub per_node: u32,
    /// Reports older than this go, whatever their count.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            per_node: 1000,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One accepted report as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub report: Report,
    pub received_at_ms: u64,
    /// The token it came with: sequence numbers count per token.
    pub token_id: i64,
}

/// Reports queued beyond this make senders wait (in the async sense).
const QUEUE: usize = 8192;
/// At most this many reports go into one transaction.
const BATCH: usize = 1024;
/// Pruning by age scans an index; once a minute is plenty.
const AGE_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The WAL is checkpointed at most this often while reports arrive. Each
/// checkpoint costs two fsyncs; between them the WAL grows by what the
/// writer commits meanwhile.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// What became of a report handed to [`ReportStore::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Committed.
    Stored,
    /// Not stored: the registry no longer holds the report's token (it was
    /// revoked or replaced, possibly by another process).
    TokenGone,
}

enum Job {
    Save {
        stored: StoredReport,
        done: oneshot::Sender<Result<Saved, String>>,
    },
    Close(oneshot::Sender<()>),
}

/// The report store. Cheap to share behind an `Arc`.
pub struct ReportStore {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl ReportStore {
    /// Opens (creating it if needed) the database at `path` and starts the
    /// writer thread.
    pub fn open(path: &Path, retention: Retention) -> Result<Self, CollectorError> {
        let connection = db::open(path)?;
        connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(CollectorError::sqlite(path))?;
        let checkpointer = Checkpointer::start(path)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("kiln-collector-store".to_owned())
            .spawn(move || {
                write_loop(connection, &owned, queue, retention, &checkpointer.wake);
                checkpointer.stop();
            })
            .map_err(|source| CollectorError::io("start the writer thread for", path, source))?;
        Ok(Self {
            path: path.to_owned(),
            jobs,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `stored` unless its token is gone from the registry, and
    /// returns once that is committed.
    pub async fn save(&self, stored: StoredReport) -> Result<Saved, CollectorError> {
        let gone = |reason| CollectorError::WriterGone {
            path: self.path.clone(),
            reason,
        };
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job::Save { stored, done })
            .await
            .map_err(|_| gone("has stopped"))?;
        committed
            .await
            .map_err(|_| gone("stopped before committing"))?
            .map_err(|reason| CollectorError::WriteFailed {
                path: self.path.clone(),
                reason,
            })
    }

    /// Commits what is queued and stops the writer thread; later saves fail.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Every node's latest report (read at start).
    pub fn latest(&self) -> Result<Vec<StoredReport>, CollectorError> {
        let connection = db::open(&self.path)?;
        read_reports(
            &connection,
            &self.path,
            "SELECT report, received_at_ms, token_id FROM latest ORDER BY cluster, node",
            [],
        )
    }

    /// `node`'s kept reports, newest first, at most `limit`.
    pub fn history(
        &self,
        node: &NodeIdentity,
        limit: u32,
    ) -> Result<Vec<StoredReport>, CollectorError> {
        let connection = db::open(&self.path)?;
        read_reports(
            &connection,
            &self.path,
            "SELECT report, received_at_ms, 0 FROM history WHERE cluster = ?1 AND node = ?2
             ORDER BY id DESC LIMIT ?3",
            params![node.cluster, node.node, limit],
        )
    }
}

impl std::fmt::Debug for ReportStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReportStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn read_reports(
    connection: &Connection,
    path: &Path,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<StoredReport>, CollectorError> {
    let rows: Vec<(String, i64, i64)> = connection
        .prepare(sql)
        .and_then(|mut statement| {
            statement
                .query_map(parameters, |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
        })
        .map_err(CollectorError::sqlite(path))?;
    rows.into_iter()
        .map(|(json, received_at_ms, token_id)| {
            let report =
                serde_json::from_str(&json).map_err(|error| CollectorError::BadStoredReport {
                    path: path.to_owned(),
                    reason: error.to_string(),
                })?;
            Ok(StoredReport {
                report,
                received_at_ms: from_sql(received_at_ms),
                token_id,
            })
        })
        .collect()
}

fn write_loop(
    mut connection: Connection,
    path: &Path,
    mut queue: mpsc::Receiver<Job>,
    retention: Retention,
    checkpoint: &std_mpsc::SyncSender<()>,
) {
    let mut last_age_prune: Option<Instant> = None;
    while let Some(first) = queue.blocking_recv() {
        let mut batch = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Save { stored, done } => batch.push((stored, done)),
                Job::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if batch.len() < BATCH {
                next = queue.try_recv().ok();
            }
        }
        let prune_age = last_age_prune.is_none_or(|last| last.elapsed() >= AGE_PRUNE_EVERY);
        let outcome = write_batch(&mut connection, &batch, retention, prune_age)
            .map_err(|error| error.to_string());
        match &outcome {
            Err(reason) => {
                tracing::error!(database = %path.display(), %reason, "cannot store reports");
            }
            Ok(_) => {
                if prune_age {
                    last_age_prune = Some(Instant::now());
                }
                // Full means a checkpoint is already due.
                let _ = checkpoint.try_send(());
            }
        }
        for (index, (_, done)) in batch.into_iter().enumerate() {
            let saved = match &outcome {
                Ok(saved) => Ok(saved.get(index).copied().unwrap_or(Saved::TokenGone)),
                Err(reason) => Err(reason.clone()),
            };
            let _ = done.send(saved);
        }
        if let Some(done) = close {
            let _ = done.send(());
            return;
        }
    }
}

/// Stores the batch in one transaction; says for each report whether it
/// was stored.
fn write_batch(
    connection: &mut Connection,
    batch: &[(StoredReport, oneshot::Sender<Result<Saved, String>>)],
    retention: Retention,
    prune_age: bool,
) -> Result<Vec<Saved>, rusqlite::Error> {
    let transaction = connection.transaction()?;
    let mut touched = BTreeSet::new();
    let mut saved = Vec::with_capacity(batch.len());
    {
        let mut token_held =
            transaction.prepare_cached("SELECT EXISTS (SELECT 1 FROM tokens WHERE id = ?1)")?;
        // Reports of one node may reach the queue out of order; the latest
        // stays the one with the highest sequence of the current token.
        let mut latest = transaction.prepare_cached(
            "INSERT INTO latest (cluster, node, token_id, sequence, received_at_ms, report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (cluster, node) DO UPDATE SET
                 token_id = excluded.token_id, sequence = excluded.sequence,
                 received_at_ms = excluded.received_at_ms, report = excluded.report
             WHERE excluded.token_id > latest.token_id
                OR (excluded.token_id = latest.token_id AND excluded.sequence > latest.sequence)",
        )?;
        let mut history = transaction.prepare_cached(
            "INSERT INTO history (cluster, node, sequence, received_at_ms, report)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (stored, _) in batch {
            if !token_held.query_row([stored.token_id], |row| row.get::<_, bool>(0))? {
                saved.push(Saved::TokenGone);
                continue;
            }
            saved.push(Saved::Stored);
            let report = &stored.report;
            let json = serde_json::to_string(report)
                .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
            let (sequence, received) = (to_sql(report.sequence), to_sql(stored.received_at_ms));
            latest.execute(params![
                report.cluster,
                report.node,
                stored.token_id,
                sequence,
                received,
                json
            ])?;
            history.execute(params![
                report.cluster,
                report.node,
                sequence,
                received,
                json
            ])?;
            touched.insert((report.cluster.as_str(), report.node.as_str()));
        }
        let mut prune = transaction.prepare_cached(
            "DELETE FROM history WHERE cluster = ?1 AND node = ?2 AND id <= (
                 SELECT id FROM history WHERE cluster = ?1 AND node = ?2
                 ORDER BY id DESC LIMIT 1 OFFSET ?3)",
        )?;
        for (cluster, node) in touched {
            prune.execute(params![cluster, node, retention.per_node])?;
        }
        if prune_age {
            let max_age_ms = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now_ms().saturating_sub(max_age_ms);
            transaction.execute(
                "DELETE FROM history WHERE received_at_ms < ?1",
                [to_sql(cutoff)],
            )?;
        }
    }
    transaction.commit()?;
    Ok(saved)
}

/// The thread that checkpoints the WAL, on its own connection, when the
/// writer has committed and [`CHECKPOINT_EVERY`] has passed. A passive
/// checkpoint never blocks the writer.
struct Checkpointer {
    wake: std_mpsc::SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, CollectorError> {
        let connection = db::open(path)?;
        let (wake, woken) = std_mpsc::sync_channel(1);
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("kiln-collector-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&connection, &owned, &woken))
            .map_err(|source| {
                CollectorError::io("start the checkpoint thread for", path, source)
            })?;
        Ok(Self { wake, thread })
    }

    /// Runs a last checkpoint and waits for the thread to end.
    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

fn checkpoint_loop(connection: &Connection, path: &Path, woken: &std_mpsc::Receiver<()>) {
    let mut last = Instant::now();
    let checkpoint = || {
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        }) {
            tracing::warn!(database = %path.display(), %error, "cannot checkpoint the WAL");
        }
    };
    while woken.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(last.elapsed()));
        checkpoint();
        last = Instant::now();
    }
    checkpoint();
}
