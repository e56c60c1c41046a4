//! The file, its schema and the writer: what lands on disk, and how.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use uuid::Uuid;

use super::*;
use crate::events::EventSink;
use crate::{FILE_NAME, History, JournalError, RunStatus, StepRecord, StepStatus, schema};
use kiln_secrets::Dirs;

#[test]
fn a_new_journal_is_migrated_private_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/kiln");
    let dirs = Dirs {
        state: state.clone(),
        config: dir.path().join("config"),
    };
    let journal = Journal::open(&dirs).unwrap();
    journal.emit(&started(Uuid::now_v7(), "lab", 0));
    journal.flush().unwrap();
    let path = state.join(FILE_NAME);
    assert_eq!(journal.path(), path);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&state.join("journal.sqlite3-wal")), 0o600);

    let connection = Connection::open(&path).unwrap();
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::current_version());
    let mode: String = connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let indexes: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, ["runs_by_cluster", "runs_by_time", "steps_by_run"]);
}

#[test]
fn reopening_keeps_the_runs_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let run = Uuid::now_v7();
    let journal = Journal::open_at(&path).unwrap();
    two_node_apply(&journal, run);
    journal.close().unwrap();
    let journal = Journal::open_at(&path).unwrap();
    assert_eq!(journal.runs(None, 10).unwrap().len(), 1);
    assert_eq!(journal.run(&run.to_string()).unwrap().steps.len(), 8);
}

#[test]
fn a_file_that_is_not_a_journal_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sqlite3");
    fs::write(&garbage, vec![0x5a_u8; 8192]).unwrap();
    for error in [
        Journal::open_at(&garbage).unwrap_err(),
        History::open_at(&garbage).err().unwrap(),
    ] {
        assert!(
            matches!(error, JournalError::NotAJournal { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&garbage.display().to_string()),
            "{message}"
        );
        assert!(message.contains("move it aside"), "{message}");
    }

    let foreign = dir.path().join("foreign.sqlite3");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .unwrap();
    let error = Journal::open_at(&foreign).unwrap_err();
    assert!(
        matches!(error, JournalError::NotAJournal { .. }),
        "{error:?}"
    );
}

#[test]
fn a_journal_from_a_newer_kiln_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    Journal::open_at(&path).unwrap().close().unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = History::open_at(&path).err().unwrap();
    assert!(
        matches!(error, JournalError::NewerSchema { found: 99, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&path.display().to_string()));
}

#[test]
fn a_missing_journal_reads_as_empty_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none/journal.sqlite3");
    let history = History::open_at(&path).unwrap();
    assert!(history.runs(None, 10).unwrap().is_empty());
    let error = history.run("0193").unwrap_err();
    assert!(matches!(error, JournalError::NoSuchRun { .. }), "{error:?}");
    assert!(!path.exists());
}

#[test]
fn a_step_run_twice_closes_its_latest_start() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let run = Uuid::now_v7();
    for event in [
        started(run, "lab", 0),
        step_started(run, None, "wait", 0),
        step_finished(run, None, "wait", 10, 1, StepOutcome::Succeeded),
        step_started(run, None, "wait", 20),
        step_finished(run, None, "wait", 50, 1, StepOutcome::Succeeded),
    ] {
        journal.emit(&event);
    }
    let detail = journal.run(&run.to_string()).unwrap();
    let durations: Vec<Option<Duration>> = detail.steps.iter().map(StepRecord::duration).collect();
    assert_eq!(
        durations,
        [
            Some(Duration::from_millis(10)),
            Some(Duration::from_millis(30))
        ]
    );
}

#[test]
fn emit_returns_while_another_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let journal = Journal::open_at(&path).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let run = Uuid::now_v7();
    // Were `emit` to write itself, the first call would wait on the lock
    // this thread holds until the busy timeout, then lose the event.
    journal.emit(&started(run, "lab", 0));
    for step in 0..100 {
        let name = format!("step{step}");
        journal.emit(&step_started(run, None, &name, step));
        journal.emit(&step_finished(
            run,
            None,
            &name,
            step + 1,
            1,
            StepOutcome::Succeeded,
        ));
    }
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(journal.run(&run.to_string()).unwrap().steps.len(), 100);
}

#[test]
fn events_for_an_unknown_run_are_reported_at_close_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let run = Uuid::now_v7();
    let stranger = Uuid::now_v7();
    journal.emit(&started(run, "lab", 0));
    journal.emit(&step_started(stranger, None, "observe", 0));
    journal.emit(&finished(stranger, 5, RunOutcome::Succeeded));
    journal.emit(&finished(run, 10, RunOutcome::Succeeded));
    assert_eq!(
        journal.runs(None, 10).unwrap()[0].status,
        RunStatus::Succeeded
    );
    let error = journal.close().unwrap_err();
    let JournalError::NotRecorded { count, first } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*count, 2);
    assert!(
        matches!(**first, JournalError::UnknownRun { run, .. } if run == stranger),
        "{first:?}"
    );
    // Closed: later events are dropped, not queued forever.
    journal.emit(&started(Uuid::now_v7(), "lab", 20));
    assert_eq!(journal.runs(None, 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_emitted_from_many_tasks_at_once_all_land() {
    const TASKS: usize = 16;
    const NODES: usize = 4;
    const STEPS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open_at(&dir.path().join(FILE_NAME)).unwrap());
    let runs: Vec<Uuid> = (0..TASKS / NODES).map(|_| Uuid::now_v7()).collect();
    for run in &runs {
        journal.emit(&started(*run, "lab", 0));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let journal = Arc::clone(&journal);
        let run = runs[task % runs.len()];
        let node = format!("node{task}");
        tasks.spawn(async move {
            for step in 0..STEPS {
                let name = format!("step{step}");
                let millis = u64::try_from(step).unwrap() * 10;
                journal.emit(&step_started(run, Some(&node), &name, millis));
                tokio::task::yield_now().await;
                journal.emit(&step_finished(
                    run,
                    Some(&node),
                    &name,
                    millis + 5,
                    1,
                    StepOutcome::Succeeded,
                ));
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    for run in &runs {
        journal.emit(&finished(*run, 1_000, RunOutcome::Succeeded));
    }
    journal.close().unwrap();

    let history = History::open_at(journal.path()).unwrap();
    assert_eq!(history.runs(None, 100).unwrap().len(), runs.len());
    for run in &runs {
        let detail = history.run(&run.to_string()).unwrap();
        assert_eq!(detail.summary.status, RunStatus::Succeeded);
        assert_eq!(detail.steps.len(), NODES * STEPS);
        assert!(
            detail
                .steps
                .iter()
                .all(|step| step.status == StepStatus::Succeeded
                    && step.duration() == Some(Duration::from_millis(5)))
        );
    }
}

#[test]
fn the_journal_stores_exactly_the_texts_it_is_given_and_nothing_else() {
    // A secret as the engine holds one; the error text it reports is built
    // without it, and the journal must add nothing of its own.
    let canary = secrecy::SecretString::from(format!("kiln-canary-{}", Uuid::now_v7().simple()));
    let error = format!("node `lab1`: clone failed: 403 Forbidden (token {canary:?})");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let journal = Journal::open_at(&path).unwrap();
    let run = Uuid::now_v7();
    for event in [
        started(run, "lab", 0),
        step_started(run, Some("lab1"), "clone", 0),
        step_finished(
            run,
            Some("lab1"),
            "clone",
            5,
            1,
            StepOutcome::Failed(error.clone()),
        ),
        finished(run, 10, RunOutcome::Failed),
    ] {
        journal.emit(&event);
    }
    journal.close().unwrap();

    let detail = History::open_at(&path)
        .unwrap()
        .run(&run.to_string())
        .unwrap();
    assert_eq!(detail.steps[0].status, StepStatus::Failed(error));
    use secrecy::ExposeSecret;
    let secret = canary.expose_secret().as_bytes();
    for entry in fs::read_dir(dir.path()).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|window| window == secret));
    }
}

#[test]
fn two_journals_on_one_file_both_record_everything() {
    // Two kiln processes running two clusters at once share the state dir.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let journals = [
        Arc::new(Journal::open_at(&path).unwrap()),
        Arc::new(Journal::open_at(&path).unwrap()),
    ];
    let runs = [Uuid::now_v7(), Uuid::now_v7()];
    let threads: Vec<_> = journals
        .iter()
        .zip(runs)
        .map(|(journal, run)| {
            let journal = Arc::clone(journal);
            std::thread::spawn(move || {
                journal.emit(&started(run, "lab", 0));
                for step in 0..200 {
                    let name = format!("step{step}");
                    journal.emit(&step_started(run, None, &name, step));
                    journal.flush().unwrap();
                    journal.emit(&step_finished(
                        run,
                        None,
                        &name,
                        step + 1,
                        1,
                        StepOutcome::Succeeded,
                    ));
                }
                journal.emit(&finished(run, 1_000, RunOutcome::Succeeded));
                journal.close().unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let history = History::open_at(&path).unwrap();
    for run in runs {
        let detail = history.run(&run.to_string()).unwrap();
        assert_eq!(detail.summary.status, RunStatus::Succeeded);
        assert_eq!(detail.steps.len(), 200);
    }
}

#[test]
fn history_reads_while_a_run_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let journal = Journal::open_at(&path).unwrap();
    journal.emit(&started(Uuid::now_v7(), "lab", 0));
    journal.flush().unwrap();
    let writer = Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let history = History::open_at(&path).unwrap();
    assert_eq!(history.runs(None, 10).unwrap().len(), 1);
    writer.execute_batch("COMMIT").unwrap();
}
