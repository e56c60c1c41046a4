//! The one thread that writes the journal. The engine emits events from
//! async code and must never wait for a disk; it hands them to this thread
//! through an unbounded channel and goes on.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::error::JournalError;
use crate::events::{Event, RunOutcome, StepOutcome};

/// What the writer thread is asked to do.
pub enum Message {
    Record(Event),
    /// Answered once everything sent before it is committed.
    Flush(SyncSender<()>),
}

/// Events written in one transaction at most: big enough that a burst
/// (fifty nodes starting a step together) costs one commit, small enough
/// that a flush is answered promptly.
const BATCH: usize = 256;

/// Runs until every sender is gone, then reports the first write that
/// failed. A failed event does not stop the others from being recorded: a
/// record with a gap beats no record.
pub fn run(
    mut connection: Connection,
    path: PathBuf,
    messages: Receiver<Message>,
) -> Result<(), JournalError> {
    let mut failures = Failures::default();
    while let Ok(first) = messages.recv() {
        let mut batch = vec![first];
        batch.extend(messages.try_iter().take(BATCH - 1));
        write_batch(&mut connection, &path, &batch, &mut failures);
        for message in batch {
            if let Message::Flush(done) = message {
                // The asker may have given up waiting; nothing to tell then.
                let _ = done.send(());
            }
        }
    }
    failures.into_result()
}

#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<JournalError>,
}

impl Failures {
    /// `error` cost `events` events their place in the journal.
    fn add(&mut self, error: JournalError, events: usize) {
        tracing::warn!(%error, events, "kiln could not record events in its journal");
        self.count += events;
        self.first.get_or_insert(error);
    }

    fn into_result(self) -> Result<(), JournalError> {
        match self.first {
            None => Ok(()),
            Some(first) => Err(JournalError::NotRecorded {
                count: self.count,
                first: Box::new(first),
            }),
        }
    }
}

fn write_batch(
    connection: &mut Connection,
    path: &Path,
    batch: &[Message],
    failures: &mut Failures,
) {
    let events: Vec<&Event> = batch
        .iter()
        .filter_map(|message| match message {
            Message::Record(event) => Some(event),
            Message::Flush(_) => None,
        })
        .collect();
    if events.is_empty() {
        return;
    }
    // Immediate: take the write lock up front, where SQLite's busy timeout
    // applies. A deferred transaction that reads first and then finds that
    // another kiln process wrote in between fails at once instead.
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(source) => return failures.add(JournalError::sqlite(path, source), events.len()),
    };
    let mut written = 0;
    for event in events {
        match record(&transaction, path, event) {
            Ok(()) => written += 1,
            Err(error) => failures.add(error, 1),
        }
    }
    if let Err(source) = transaction.commit() {
        // The events written so far go with the transaction.
        failures.add(JournalError::sqlite(path, source), written);
    }
}

fn record(transaction: &Transaction<'_>, path: &Path, event: &Event) -> Result<(), JournalError> {
    let sqlite = |source| JournalError::sqlite(path, source);
    match event {
        Event::RunStarted {
            run,
            command,
            cluster,
            inventory_hash,
            operator,
            at,
        } => transaction
            .execute(
                "INSERT INTO runs (id, command, cluster, inventory_hash, operator, started_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run.to_string(),
                    command,
                    cluster,
                    inventory_hash,
                    operator,
                    millis(*at)
                ],
            )
            .map(drop)
            .map_err(sqlite),
        Event::StepStarted {
            run,
            node,
            step,
            at,
        } => {
            known_run(transaction, path, *run)?;
            transaction
                .execute(
                    "INSERT INTO steps (run_id, node, step, started_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![run.to_string(), node, step, millis(*at)],
                )
                .map(drop)
                .map_err(sqlite)
        }
        Event::StepFinished {
            run,
            node,
            step,
            at,
            attempts,
            outcome,
        } => {
            known_run(transaction, path, *run)?;
            let (outcome, error) = match outcome {
                StepOutcome::Succeeded => ("succeeded", None),
                StepOutcome::Failed(error) => ("failed", Some(error)),
                StepOutcome::Skipped(reason) => ("skipped", Some(reason)),
            };
            let run = run.to_string();
            let at = millis(*at);
            // The latest start of this step without an end; a step skipped
            // before it started has none, and gets a row of zero length.
            let closed = transaction
                .execute(
                    "UPDATE steps SET ended_ms = ?4, attempts = ?5, outcome = ?6, error = ?7
                     WHERE seq = (SELECT max(seq) FROM steps
                                  WHERE run_id = ?1 AND node IS ?2 AND step = ?3
                                    AND ended_ms IS NULL)",
                    params![run, node, step, at, attempts, outcome, error],
                )
                .map_err(sqlite)?;
            if closed == 0 {
                transaction
                    .execute(
                        "INSERT INTO steps
                             (run_id, node, step, started_ms, ended_ms, attempts, outcome, error)
                         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
                        params![run, node, step, at, attempts, outcome, error],
                    )
                    .map_err(sqlite)?;
            }
            Ok(())
        }
        Event::RunFinished { run, at, outcome } => {
            let outcome = match outcome {
                RunOutcome::Succeeded => "succeeded",
                RunOutcome::Failed => "failed",
                RunOutcome::Interrupted => "interrupted",
            };
            let updated = transaction
                .execute(
                    "UPDATE runs SET ended_ms = ?2, outcome = ?3 WHERE id = ?1",
                    params![run.to_string(), millis(*at), outcome],
                )
                .map_err(sqlite)?;
            if updated == 0 {
                return Err(JournalError::UnknownRun {
                    path: path.to_owned(),
                    run: *run,
                });
            }
            Ok(())
        }
    }
}

fn known_run(
    transaction: &Transaction<'_>,
    path: &Path,
    run: uuid::Uuid,
) -> Result<(), JournalError> {
    let found = transaction
        .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")
        .and_then(|mut statement| statement.exists([run.to_string()]))
        .map_err(|source| JournalError::sqlite(path, source))?;
    if found {
        Ok(())
    } else {
        Err(JournalError::UnknownRun {
            path: path.to_owned(),
            run,
        })
    }
}

/// Unix milliseconds, as the events' JSON has them; a clock before 1970
/// records 0 rather than failing the write.
pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}
