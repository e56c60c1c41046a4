//! The journal against real SQLite files in temp dirs: the file and its
//! schema, recording through events ([`store`]), and what the queries give
//! back ([`queries`]).

mod queries;
mod store;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::Journal;
use crate::events::{Event, EventSink, RunOutcome, StepOutcome};

/// 2023-11-14T22:13:20Z: a fixed clock, so offsets are exact.
pub fn at(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + millis)
}

pub fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

pub fn started(run: Uuid, cluster: &str, millis: u64) -> Event {
    Event::RunStarted {
        run,
        command: "apply".to_owned(),
        cluster: cluster.to_owned(),
        inventory_hash: "ab".repeat(32),
        operator: "alice@desk".to_owned(),
        at: at(millis),
    }
}

pub fn step_started(run: Uuid, node: Option<&str>, step: &str, millis: u64) -> Event {
    Event::StepStarted {
        run,
        node: node.map(str::to_owned),
        step: step.to_owned(),
        at: at(millis),
    }
}

pub fn step_finished(
    run: Uuid,
    node: Option<&str>,
    step: &str,
    millis: u64,
    attempts: u32,
    outcome: StepOutcome,
) -> Event {
    Event::StepFinished {
        run,
        node: node.map(str::to_owned),
        step: step.to_owned(),
        at: at(millis),
        attempts,
        outcome,
    }
}

pub fn finished(run: Uuid, millis: u64, outcome: RunOutcome) -> Event {
    Event::RunFinished {
        run,
        at: at(millis),
        outcome,
    }
}

/// Two nodes through allocate, clone, start: lab2's clone needed a retry.
pub fn two_node_apply(journal: &Journal, run: Uuid) {
    let events = [
        started(run, "lab", 0),
        step_started(run, None, "observe", 0),
        step_finished(run, None, "observe", 500, 1, StepOutcome::Succeeded),
        step_started(run, Some("lab1"), "allocate", 500),
        step_started(run, Some("lab2"), "allocate", 500),
        step_finished(
            run,
            Some("lab1"),
            "allocate",
            600,
            1,
            StepOutcome::Succeeded,
        ),
        step_finished(
            run,
            Some("lab2"),
            "allocate",
            700,
            1,
            StepOutcome::Succeeded,
        ),
        step_started(run, Some("lab1"), "clone", 600),
        step_started(run, Some("lab2"), "clone", 700),
        step_finished(run, Some("lab1"), "clone", 8_600, 1, StepOutcome::Succeeded),
        step_finished(
            run,
            Some("lab2"),
            "clone",
            10_700,
            2,
            StepOutcome::Succeeded,
        ),
        step_started(run, Some("lab1"), "start", 8_600),
        step_started(run, Some("lab2"), "start", 10_700),
        step_finished(
            run,
            Some("lab1"),
            "start",
            10_600,
            1,
            StepOutcome::Succeeded,
        ),
        step_finished(
            run,
            Some("lab2"),
            "start",
            11_700,
            3,
            StepOutcome::Failed("node `lab2`: `start` did not finish within 1s".to_owned()),
        ),
        step_finished(
            run,
            Some("lab2"),
            "wait_ip",
            11_700,
            0,
            StepOutcome::Skipped("`start` failed".to_owned()),
        ),
        finished(run, 12_000, RunOutcome::Failed),
    ];
    for event in &events {
        journal.emit(event);
    }
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap()
}
