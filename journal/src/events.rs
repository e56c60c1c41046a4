//! What a run reports as it goes: the progress display, `-o json` output
//! and the journal all consume these, so they cannot disagree.

use std::time::SystemTime;

use serde::Serialize;
use uuid::Uuid;

/// One thing that happened in a run. `-o json` prints one per line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run: Uuid,
        /// `apply`, `destroy`, `rebuild`, `node add`, …
        command: String,
        cluster: String,
        /// SHA-256 of the inventory file's bytes.
        inventory_hash: String,
        /// `user@host` of whoever ran it.
        operator: String,
        #[serde(with = "unix_millis")]
        at: SystemTime,
    },
    StepStarted {
        run: Uuid,
        /// `None` for cluster-wide steps.
        node: Option<String>,
        step: String,
        #[serde(with = "unix_millis")]
        at: SystemTime,
    },
    StepFinished {
        run: Uuid,
        node: Option<String>,
        step: String,
        #[serde(with = "unix_millis")]
        at: SystemTime,
        /// How many times it was tried (retries of retryable errors).
        attempts: u32,
        outcome: StepOutcome,
    },
    RunFinished {
        run: Uuid,
        #[serde(with = "unix_millis")]
        at: SystemTime,
        outcome: RunOutcome,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum StepOutcome {
    Succeeded,
    /// The error, as the user sees it (never a secret).
    Failed(String),
    /// Not run: a step it depends on failed or the run was interrupted.
    Skipped(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Interrupted,
}

/// Where events go. Implementations must be cheap: the engine calls them
/// inline.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

mod unix_millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(
        at: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        serializer.serialize_u128(millis)
    }
}

/// Sends every event to several sinks: progress for the person, the
/// journal for the record.
pub struct Fanout(pub Vec<std::sync::Arc<dyn EventSink>>);

impl EventSink for Fanout {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}
