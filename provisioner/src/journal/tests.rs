//! The journal against real SQLite files in temp dirs: schema, recording
//! through events, queries, phase totals, crashes and concurrency.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use uuid::Uuid;

use super::*;
use crate::engine::{RunOutcome, StepOutcome};

/// 2023-11-14T22:13:20Z: a fixed clock, so offsets are exact.
fn at(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + millis)
}

fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

fn started(run: Uuid, cluster: &str, millis: u64) -> Event {
    Event::RunStarted {
        run,
        command: "apply".to_owned(),
        cluster: cluster.to_owned(),
        inventory_hash: "ab".repeat(32),
        operator: "alice@desk".to_owned(),
        at: at(millis),
    }
}

fn step_started(run: Uuid, node: Option<&str>, step: &str, millis: u64) -> Event {
    Event::StepStarted {
        run,
        node: node.map(str::to_owned),
        step: step.to_owned(),
        at: at(millis),
    }
}

fn step_finished(
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

fn finished(run: Uuid, millis: u64, outcome: RunOutcome) -> Event {
    Event::RunFinished {
        run,
        at: at(millis),
        outcome,
    }
}

/// Two nodes through allocate, clone, start: lab2's clone needed a retry.
fn two_node_apply(journal: &Journal, run: Uuid) {
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

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

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
fn events_become_a_run_with_its_steps_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let run = Uuid::now_v7();
    two_node_apply(&journal, run);
    let detail = journal.run(&run.to_string()).unwrap();

    let summary = &detail.summary;
    assert_eq!(summary.id, run);
    assert_eq!(summary.short_id, run.to_string()[..8]);
    assert_eq!(summary.command, "apply");
    assert_eq!(summary.cluster, "lab");
    assert_eq!(summary.inventory_hash, "ab".repeat(32));
    assert_eq!(summary.operator, "alice@desk");
    assert_eq!(summary.started, at(0));
    assert_eq!(summary.ended, Some(at(12_000)));
    assert_eq!(summary.status, RunStatus::Failed);
    assert_eq!(summary.duration(), Some(Duration::from_secs(12)));

    let rows: Vec<(Option<&str>, &str, u64, Option<u64>, Option<u32>, &str)> = detail
        .steps
        .iter()
        .map(|step| {
            (
                step.node.as_deref(),
                step.step.as_str(),
                millis(detail.offset(step.started)),
                step.duration().map(millis),
                step.attempts,
                step.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (None, "observe", 0, Some(500), Some(1), "succeeded"),
            (
                Some("lab1"),
                "allocate",
                500,
                Some(100),
                Some(1),
                "succeeded"
            ),
            (
                Some("lab2"),
                "allocate",
                500,
                Some(200),
                Some(1),
                "succeeded"
            ),
            (
                Some("lab1"),
                "clone",
                600,
                Some(8_000),
                Some(1),
                "succeeded"
            ),
            (
                Some("lab2"),
                "clone",
                700,
                Some(10_000),
                Some(2),
                "succeeded"
            ),
            (
                Some("lab1"),
                "start",
                8_600,
                Some(2_000),
                Some(1),
                "succeeded"
            ),
            (
                Some("lab2"),
                "start",
                10_700,
                Some(1_000),
                Some(3),
                "failed"
            ),
            (Some("lab2"), "wait_ip", 11_700, Some(0), Some(0), "skipped"),
        ]
    );
    assert_eq!(
        detail.steps[6].status.detail(),
        Some("node `lab2`: `start` did not finish within 1s")
    );
    assert_eq!(detail.steps[7].status.detail(), Some("`start` failed"));

    let nodes: Vec<(Option<&str>, Vec<&str>)> = detail
        .nodes()
        .iter()
        .map(|timeline| {
            (
                timeline.node,
                timeline
                    .steps
                    .iter()
                    .map(|step| step.step.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            (None, vec!["observe"]),
            (Some("lab1"), vec!["allocate", "clone", "start"]),
            (Some("lab2"), vec!["allocate", "clone", "start", "wait_ip"]),
        ]
    );
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap()
}

#[test]
fn phase_totals_sum_over_nodes_and_span_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let run = Uuid::now_v7();
    two_node_apply(&journal, run);
    let detail = journal.run(&run.to_string()).unwrap();
    let phases: Vec<(String, usize, usize, u64, u64, u64)> = detail
        .phases()
        .into_iter()
        .map(|phase| {
            (
                phase.phase,
                phase.steps,
                phase.skipped,
                millis(phase.node_time),
                millis(phase.wall_clock),
                millis(detail.offset(phase.first_started.unwrap_or(at(0)))),
            )
        })
        .collect();
    let phase = |name: &str, steps, skipped, node, wall, first| {
        (name.to_owned(), steps, skipped, node, wall, first)
    };
    assert_eq!(
        phases,
        [
            phase("observe", 1, 0, 500, 500, 0),
            phase("allocate", 2, 0, 300, 200, 500),
            phase("clone", 2, 0, 18_000, 10_100, 600),
            // `start` is part of `boot`.
            phase("boot", 2, 0, 3_000, 3_100, 8_600),
            // Skipped: no time, and it sorts after the phases that ran.
            phase("wait_ip", 0, 1, 0, 0, 0),
        ]
    );
}

#[test]
fn steps_group_into_phases_by_the_table_and_unknown_steps_stand_alone() {
    assert_eq!(phases::phase_of("start"), "boot");
    assert_eq!(phases::phase_of("boot"), "boot");
    assert_eq!(phases::phase_of("allocate"), "allocate");
    assert_eq!(phases::phase_of("wait_ssh"), "ssh");
    assert_eq!(phases::phase_of("detect"), "detect");
}

#[test]
fn listing_is_newest_first_filtered_by_cluster_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let runs: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (index, run) in runs.iter().enumerate() {
        let cluster = if index % 2 == 0 { "lab" } else { "home" };
        let start = u64::try_from(index).unwrap() * 60_000;
        journal.emit(&started(*run, cluster, start));
        journal.emit(&finished(*run, start + 1_000, RunOutcome::Succeeded));
    }
    let listed = |cluster, limit| -> Vec<Uuid> {
        journal
            .runs(cluster, limit)
            .unwrap()
            .iter()
            .map(|run| run.id)
            .collect()
    };
    assert_eq!(
        listed(None, 10),
        [runs[4], runs[3], runs[2], runs[1], runs[0]]
    );
    assert_eq!(listed(None, 2), [runs[4], runs[3]]);
    assert_eq!(listed(Some("lab"), 10), [runs[4], runs[2], runs[0]]);
    assert_eq!(listed(Some("home"), 1), [runs[3]]);
    assert!(listed(Some("other"), 10).is_empty());
}

#[test]
fn runs_are_found_by_unique_prefix_and_an_ambiguous_one_lists_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    let first = id("0193b2c4-5e6f-7abc-8def-000000000001");
    let second = id("0193b2c4-5e70-7abc-8def-000000000002");
    let other = id("0193b3ff-0000-7abc-8def-000000000003");
    for (index, run) in [first, second, other].into_iter().enumerate() {
        journal.emit(&started(run, "lab", u64::try_from(index).unwrap()));
    }

    assert_eq!(journal.run("0193b3").unwrap().summary.id, other);
    assert_eq!(journal.run("0193B2C45E6F").unwrap().summary.id, first);
    assert_eq!(journal.run("0193b2c4-5e7").unwrap().summary.id, second);
    assert_eq!(journal.run(&first.to_string()).unwrap().summary.id, first);
    // Short ids in a list are unique against the whole journal.
    let shorts: Vec<String> = journal
        .runs(None, 10)
        .unwrap()
        .into_iter()
        .map(|run| run.short_id)
        .collect();
    assert_eq!(shorts, ["0193b3ff-000", "0193b2c4-5e7", "0193b2c4-5e6"]);

    let error = journal.run("0193b2c4").unwrap_err();
    let JournalError::AmbiguousRunId { candidates, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(candidates, &[first.to_string(), second.to_string()]);
    assert!(
        error.to_string().contains("give more characters"),
        "{error}"
    );

    let error = journal.run("0193ffff").unwrap_err();
    assert!(matches!(error, JournalError::NoSuchRun { .. }), "{error:?}");
    let error = journal.run("not-an-id").unwrap_err();
    assert!(matches!(error, JournalError::BadRunId { .. }), "{error:?}");
}

#[test]
fn a_run_that_died_has_no_end_and_shows_how_far_it_got() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let run = Uuid::now_v7();
    let journal = Journal::open_at(&path).unwrap();
    for event in [
        started(run, "lab", 0),
        step_started(run, Some("lab1"), "allocate", 0),
        step_finished(
            run,
            Some("lab1"),
            "allocate",
            100,
            1,
            StepOutcome::Succeeded,
        ),
        step_started(run, Some("lab1"), "clone", 100),
    ] {
        journal.emit(&event);
    }
    // What a SIGKILL leaves: the events so far, and nothing closes the run.
    journal.flush().unwrap();
    std::mem::forget(journal);

    let history = History::open_at(&path).unwrap();
    let listed = history.runs(None, 10).unwrap();
    assert_eq!(listed[0].status, RunStatus::NoEndRecorded);
    assert_eq!(listed[0].ended, None);
    assert_eq!(listed[0].duration(), None);
    assert_eq!(listed[0].recorded_span(), Duration::from_millis(100));
    let detail = history.run(&run.to_string()).unwrap();
    assert_eq!(detail.steps[1].status, StepStatus::NoEndRecorded);
    assert_eq!(detail.steps[1].attempts, None);
    let clone = detail
        .phases()
        .into_iter()
        .find(|phase| phase.phase == "clone")
        .unwrap();
    assert_eq!((clone.steps, clone.unfinished), (0, 1));
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
