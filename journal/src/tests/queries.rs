//! What the queries give back: runs, steps, timelines, phase totals, ids.

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::events::EventSink;
use crate::{FILE_NAME, History, JournalError, RunStatus, StepStatus, phases};

/// Node, step, offset, duration, attempts and outcome, in ms.
type StepRow<'a> = (
    Option<&'a str>,
    &'a str,
    u64,
    Option<u64>,
    Option<u32>,
    &'a str,
);

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

    let rows: Vec<StepRow<'_>> = detail
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
    assert_eq!(phases::phase_of("reboot"), "boot");
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
    let JournalError::AmbiguousRunId {
        count, candidates, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*count, 2);
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
fn a_prefix_many_runs_share_names_only_a_few_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open_at(&dir.path().join(FILE_NAME)).unwrap();
    for index in 0..7 {
        let run = id(&format!("0193b2c4-5e6f-7abc-8def-00000000000{index}"));
        journal.emit(&started(run, "lab", index));
    }
    let error = journal.run("0").unwrap_err();
    let JournalError::AmbiguousRunId {
        count, candidates, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((*count, candidates.len()), (7, 5));
    assert!(error.to_string().contains("7 runs"), "{error}");
    assert!(error.to_string().contains(", …)"), "{error}");
}
