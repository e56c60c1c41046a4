//! `kiln runs` and `kiln runs show`, run as a user would, on a journal the
//! test fills through the `Journal` API in a temp `KILN_STATE_DIR`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use kiln::engine::{Event, EventSink, RunOutcome, StepOutcome};
use kiln_journal::{FILE_NAME, Journal};
use serde_json::Value;
use uuid::Uuid;

/// 2023-11-14T22:13:20Z plus `millis`.
fn at(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + millis)
}

const APPLY: &str = "0193b2c4-5e6f-7abc-8def-000000000001";
const DESTROY: &str = "0193b2c4-5e70-7abc-8def-000000000002";
const CRASHED: &str = "0193b3ff-0000-7abc-8def-000000000003";

/// Three runs: a failed apply of `lab` with two nodes, a destroy of `home`,
/// and an apply of `lab` that died without an end.
fn fill(state: &Path) {
    let journal = Journal::open_at(&state.join(FILE_NAME)).expect("open the journal");
    let apply = Uuid::parse_str(APPLY).expect("a UUID");
    let destroy = Uuid::parse_str(DESTROY).expect("a UUID");
    let crashed = Uuid::parse_str(CRASHED).expect("a UUID");
    let start = |run, command: &str, cluster: &str, millis| Event::RunStarted {
        run,
        command: command.to_owned(),
        cluster: cluster.to_owned(),
        inventory_hash: "cd".repeat(32),
        operator: "alice@desk".to_owned(),
        at: at(millis),
    };
    let step = |run, node: &str, step: &str, millis| Event::StepStarted {
        run,
        node: Some(node.to_owned()),
        step: step.to_owned(),
        at: at(millis),
    };
    let done = |run, node: &str, step: &str, millis, attempts, outcome| Event::StepFinished {
        run,
        node: Some(node.to_owned()),
        step: step.to_owned(),
        at: at(millis),
        attempts,
        outcome,
    };
    let events = [
        start(apply, "apply", "lab", 0),
        step(apply, "lab1", "clone", 0),
        step(apply, "lab2", "clone", 0),
        done(apply, "lab1", "clone", 8_000, 1, StepOutcome::Succeeded),
        done(apply, "lab2", "clone", 9_000, 2, StepOutcome::Succeeded),
        step(apply, "lab1", "start", 8_000),
        step(apply, "lab2", "start", 9_000),
        done(apply, "lab1", "start", 10_000, 1, StepOutcome::Succeeded),
        done(
            apply,
            "lab2",
            "start",
            12_000,
            3,
            StepOutcome::Failed("node `lab2`: PVE said 500 got timeout".to_owned()),
        ),
        Event::RunFinished {
            run: apply,
            at: at(12_500),
            outcome: RunOutcome::Failed,
        },
        start(destroy, "destroy", "home", 60_000),
        Event::RunFinished {
            run: destroy,
            at: at(63_000),
            outcome: RunOutcome::Succeeded,
        },
        start(crashed, "apply", "lab", 120_000),
        step(crashed, "lab1", "clone", 120_000),
        done(crashed, "lab1", "clone", 125_000, 1, StepOutcome::Succeeded),
        step(crashed, "lab1", "start", 125_000),
    ];
    for event in &events {
        journal.emit(event);
    }
    journal.close().expect("every event recorded");
}

fn kiln(state: &Path) -> Command {
    let mut command = Command::cargo_bin("kiln").expect("kiln binary");
    command
        .env("KILN_STATE_DIR", state)
        .env_remove("KILN_INVENTORY")
        .env_remove("KILN_LOG");
    command
}

fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().expect("run kiln");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn runs_lists_newest_first_with_short_ids_durations_and_outcomes() {
    let state = tempfile::tempdir().unwrap();
    fill(state.path());
    let (ok, out, err) = run(kiln(state.path()).arg("runs"));
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for column in [
        "ID",
        "COMMAND",
        "CLUSTER",
        "STARTED (UTC)",
        "DURATION",
        "OUTCOME",
    ] {
        assert!(lines[0].contains(column), "{out}");
    }
    // The two runs sharing eight characters need twelve to tell apart.
    assert!(lines[1].starts_with("0193b3ff-000 "), "{out}");
    assert!(lines[1].contains("≥5.0s"), "{out}");
    assert!(lines[1].ends_with("interrupted (no end recorded)"), "{out}");
    assert!(lines[2].starts_with("0193b2c4-5e7 "), "{out}");
    assert!(
        lines[2].contains("destroy") && lines[2].contains("home"),
        "{out}"
    );
    assert!(lines[2].contains("2023-11-14T22:14:20Z"), "{out}");
    assert!(lines[2].ends_with("succeeded"), "{out}");
    assert!(lines[3].starts_with("0193b2c4-5e6 "), "{out}");
    assert!(
        lines[3].contains("12.5s") && lines[3].ends_with("failed"),
        "{out}"
    );

    let (ok, out, err) = run(kiln(state.path()).args(["runs", "--cluster", "home"]));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let (ok, out, err) = run(kiln(state.path()).args(["runs", "--cluster", "nope"]));
    assert!(ok, "{err}");
    assert!(
        out.starts_with("No runs of cluster `nope` recorded in "),
        "{out}"
    );
    let (ok, out, err) = run(kiln(state.path()).args(["runs", "--limit", "1"]));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("0193b3ff"), "{out}");
}

#[test]
fn runs_show_prints_each_nodes_timeline_and_the_phase_totals() {
    let state = tempfile::tempdir().unwrap();
    fill(state.path());
    let (ok, out, err) = run(kiln(state.path()).args(["runs", "show", "0193b2c4-5e6"]));
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("Run {APPLY} (apply, cluster lab)\n")),
        "{out}"
    );
    assert!(out.contains("  outcome    failed\n"), "{out}");
    assert!(out.contains("after 12.5s"), "{out}");
    let lab2 = out.split("\n  lab2\n").nth(1).expect("a lab2 section");
    assert!(
        lab2.contains("    +0.0s  clone  9.0s  2×  succeeded\n"),
        "{out}"
    );
    assert!(
        lab2.contains(
            "    +9.0s  start  3.0s  3×  failed: node `lab2`: PVE said 500 got timeout\n"
        ),
        "{out}"
    );
    let phases = out.split("Phases").nth(1).expect("phase totals");
    let rows: Vec<Vec<&str>> = phases
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["clone", "2", "17.0s", "9.0s"],
            vec!["boot", "2", "5.0s", "4.0s"],
        ],
        "{out}"
    );

    let (ok, out, err) = run(kiln(state.path()).args(["runs", "show", "0193b3ff"]));
    assert!(ok, "{err}");
    assert!(out.contains("interrupted (no end recorded)"), "{out}");
    let unfinished = ["+5.0s", "start", "—", "—", "no", "end", "recorded"];
    assert!(
        out.lines()
            .any(|line| line.split_whitespace().eq(unfinished)),
        "{out}"
    );
    assert!(out.contains("1 without an end"), "{out}");
}

#[test]
fn an_ambiguous_or_unknown_prefix_fails_and_says_why() {
    let state = tempfile::tempdir().unwrap();
    fill(state.path());
    let (ok, _, err) = run(kiln(state.path()).args(["runs", "show", "0193b2c4"]));
    assert!(!ok);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(APPLY) && err.contains(DESTROY), "{err}");
    let (ok, _, err) = run(kiln(state.path()).args(["runs", "show", "ffff"]));
    assert!(!ok);
    assert!(
        err.contains("no run in") && err.contains(FILE_NAME),
        "{err}"
    );
}

#[test]
fn json_output_follows_the_documented_shape() {
    let state = tempfile::tempdir().unwrap();
    fill(state.path());
    let (ok, out, err) = run(kiln(state.path()).args(["-o", "json", "runs"]));
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["format_version"], 1);
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["id"], CRASHED);
    assert_eq!(runs[0]["outcome"], "no_end_recorded");
    assert_eq!(runs[0]["ended"], Value::Null);
    assert_eq!(runs[0]["duration_ms"], Value::Null);
    assert_eq!(runs[0]["recorded_ms"], 5_000);
    assert_eq!(runs[2]["short_id"], "0193b2c4-5e6");
    assert_eq!(runs[2]["command"], "apply");
    assert_eq!(runs[2]["cluster"], "lab");
    assert_eq!(runs[2]["operator"], "alice@desk");
    assert_eq!(runs[2]["inventory_hash"], "cd".repeat(32));
    assert_eq!(runs[2]["started"], "2023-11-14T22:13:20Z");
    assert_eq!(runs[2]["started_ms"], 1_700_000_000_000_u64);
    assert_eq!(runs[2]["ended_ms"], 1_700_000_012_500_u64);
    assert_eq!(runs[2]["duration_ms"], 12_500);
    assert_eq!(runs[2]["outcome"], "failed");

    let (ok, out, err) = run(kiln(state.path()).args(["-o", "json", "runs", "show", APPLY]));
    assert!(ok, "{err}");
    let detail: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["format_version"], 1);
    assert_eq!(detail["run"]["id"], APPLY);
    let nodes = detail["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["node"], "lab2");
    let start = &nodes[1]["steps"][1];
    assert_eq!(start["step"], "start");
    assert_eq!(start["phase"], "boot");
    assert_eq!(start["offset_ms"], 9_000);
    assert_eq!(start["duration_ms"], 3_000);
    assert_eq!(start["attempts"], 3);
    assert_eq!(start["outcome"], "failed");
    assert_eq!(start["detail"], "node `lab2`: PVE said 500 got timeout");
    let phases = detail["phases"].as_array().unwrap();
    assert_eq!(phases[0]["phase"], "clone");
    assert_eq!(phases[0]["steps"], 2);
    assert_eq!(phases[0]["node_time_ms"], 17_000);
    assert_eq!(phases[0]["wall_clock_ms"], 9_000);
    assert_eq!(phases[0]["offset_ms"], 0);
    assert_eq!(phases[1]["phase"], "boot");
    assert_eq!(phases[1]["wall_clock_ms"], 4_000);
}

#[test]
fn without_a_journal_there_is_nothing_to_list_and_nothing_is_created() {
    let state = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(kiln(state.path()).arg("runs"));
    assert!(ok, "{err}");
    assert!(out.starts_with("No runs recorded in "), "{out}");
    let (ok, out, err) = run(kiln(state.path()).args(["-o", "json", "runs"]));
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["runs"],
        Value::Array(vec![])
    );
    assert!(!state.path().join(FILE_NAME).exists());
}

#[test]
fn a_damaged_journal_is_an_error_naming_the_file() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join(FILE_NAME), [0x5a_u8; 4096]).unwrap();
    let (ok, _, err) = run(kiln(state.path()).arg("runs"));
    assert!(!ok);
    assert!(
        err.contains(&state.path().join(FILE_NAME).display().to_string()),
        "{err}"
    );
    assert!(err.contains("not a kiln journal"), "{err}");
}

#[test]
fn a_secret_in_the_environment_reaches_neither_the_output_nor_the_journal() {
    let canary = format!("kiln-canary-{}", Uuid::now_v7().simple());
    let state = tempfile::tempdir().unwrap();
    fill(state.path());
    for args in [
        &["runs"][..],
        &["runs", "show", APPLY],
        &["-o", "json", "runs", "show", CRASHED],
    ] {
        let (ok, out, err) = run(kiln(state.path())
            .env("KILN_TEST_SECRET", &canary)
            .env("VAULT_TOKEN", &canary)
            .args(args));
        assert!(ok, "{err}");
        assert!(!out.contains(&canary) && !err.contains(&canary));
    }
    for entry in std::fs::read_dir(state.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(canary.len())
                .any(|window| window == canary.as_bytes())
        );
    }
}
