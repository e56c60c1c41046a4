//! kiln-journal: what a run reports as it goes ([`events`]: the progress
//! display, `-o json` and the journal all consume these, so they cannot
//! disagree), and the run journal that records them: a record, not a state. Every run and each of its steps,
//! with timings and outcomes, in SQLite (WAL) in the state dir — the
//! history `kiln runs` shows, the figures a drill's RTO comes from, and a
//! hint of where a crashed run stopped. Nothing reads it to decide what to
//! do: that comes from Proxmox.
//!
//! - [`Journal`] records: it is the engine's [`EventSink`]; a dedicated
//!   thread does the writing, so [`EventSink::emit`] never waits for a disk.
//! - [`History`] reads: runs newest first, one run with its per-node
//!   timeline and [phase totals](phases).
//!
//! Error texts are stored exactly as the engine gives them; the engine
//! keeps secrets out of them.

mod error;
pub mod events;
mod history;
pub mod phases;
mod record;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

pub use error::JournalError;
pub use history::History;
pub use phases::PhaseTotal;
pub use record::{NodeTimeline, RunDetail, RunStatus, RunSummary, StepRecord, StepStatus};
pub use schema::FILE_NAME;

use crate::events::{Event, EventSink};
use kiln_secrets::Dirs;
use writer::Message;

/// The journal, open for recording. Share it as `Arc<Journal>` (or
/// `&Journal`) wherever an [`EventSink`] is wanted; call [`Journal::close`]
/// when the run is over to learn whether everything was written.
pub struct Journal {
    path: PathBuf,
    writer: Mutex<Option<Writer>>,
}

struct Writer {
    messages: Sender<Message>,
    thread: JoinHandle<Result<(), JournalError>>,
}

impl Journal {
    /// Opens (creating it if needed) `journal.sqlite3` in the state dir.
    pub fn open(dirs: &Dirs) -> Result<Self, JournalError> {
        Self::open_at(&dirs.state.join(FILE_NAME))
    }

    /// Opens (creating it if needed) the journal at `path`.
    pub fn open_at(path: &Path) -> Result<Self, JournalError> {
        let connection = schema::open_for_writing(path)?;
        let (messages, received) = mpsc::channel();
        let owned = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("kiln-journal".to_owned())
            .spawn(move || writer::run(connection, owned, received))
            .map_err(|source| JournalError::io("start the writer thread for", path, source))?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(Some(Writer { messages, thread })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until every event emitted before this call is committed. On a
    /// closed journal there is nothing to wait for.
    pub fn flush(&self) -> Result<(), JournalError> {
        let (done, wait) = mpsc::sync_channel(1);
        {
            let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(writer) = writer.as_ref() else {
                return Ok(());
            };
            writer
                .messages
                .send(Message::Flush(done))
                .map_err(|_| JournalError::WriterGone {
                    reason: "it stopped".to_owned(),
                })?;
        }
        wait.recv().map_err(|_| JournalError::WriterGone {
            reason: "it stopped before answering a flush".to_owned(),
        })
    }

    /// Writes what is pending and stops the writer thread. The error, if
    /// any, says how many events did not make it and why the first did not.
    /// Events emitted afterwards are dropped with a warning.
    pub fn close(&self) -> Result<(), JournalError> {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Writer { messages, thread }) = writer else {
            return Ok(());
        };
        // The thread ends once the last sender is gone and the queue is empty.
        drop(messages);
        thread.join().map_err(|_| JournalError::WriterGone {
            reason: "it panicked".to_owned(),
        })?
    }

    /// The newest runs; see [`History::runs`]. Sees every event emitted
    /// before the call.
    pub fn runs(
        &self,
        cluster: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, JournalError> {
        self.flush()?;
        History::open_at(&self.path)?.runs(cluster, limit)
    }

    /// One run; see [`History::run`]. Sees every event emitted before the
    /// call.
    pub fn run(&self, id_or_prefix: &str) -> Result<RunDetail, JournalError> {
        self.flush()?;
        History::open_at(&self.path)?.run(id_or_prefix)
    }
}

impl EventSink for Journal {
    /// Queues the event for the writer thread: no disk, no waiting.
    fn emit(&self, event: &Event) {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = writer
            .as_ref()
            .is_some_and(|writer| writer.messages.send(Message::Record(event.clone())).is_ok());
        if !sent {
            tracing::warn!(journal = %self.path.display(), "the journal is closed or its writer stopped: event not recorded");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::warn!(%error, journal = %self.path.display(), "journal closed with errors");
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Journal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
