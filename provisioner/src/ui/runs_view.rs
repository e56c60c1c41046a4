//! `kiln runs` for people (a table, a timeline) and for programs (stable
//! JSON, documented in docs/operations.md: add fields, never rename or
//! remove them).

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_journal::{PhaseTotal, RunDetail, RunStatus, RunSummary, StepRecord, StepStatus};
use serde_json::{Value, json};

pub fn list_json(journal: &Path, runs: &[RunSummary]) -> Value {
    json!({
        "format_version": 1,
        "journal": journal.display().to_string(),
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
    })
}

pub fn detail_json(journal: &Path, detail: &RunDetail) -> Value {
    let nodes: Vec<Value> = detail
        .nodes()
        .iter()
        .map(|timeline| {
            json!({
                "node": timeline.node,
                "steps": timeline.steps.iter().map(|step| step_json(detail, step)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let phases: Vec<Value> = detail
        .phases()
        .iter()
        .map(|phase| phase_json(detail, phase))
        .collect();
    json!({
        "format_version": 1,
        "journal": journal.display().to_string(),
        "run": run_json(&detail.summary),
        "nodes": nodes,
        "phases": phases,
    })
}

fn run_json(run: &RunSummary) -> Value {
    json!({
        "id": run.id.to_string(),
        "short_id": run.short_id,
        "command": run.command,
        "cluster": run.cluster,
        "inventory_hash": run.inventory_hash,
        "operator": run.operator,
        "started": rfc3339(run.started),
        "started_ms": unix_millis(run.started),
        "ended": run.ended.map(rfc3339),
        "ended_ms": run.ended.map(unix_millis),
        "duration_ms": run.duration().map(millis),
        "recorded_ms": millis(run.recorded_span()),
        "outcome": run.status.as_str(),
    })
}

fn step_json(detail: &RunDetail, step: &StepRecord) -> Value {
    json!({
        "step": step.step,
        "phase": kiln_journal::phases::phase_of(&step.step),
        "started_ms": unix_millis(step.started),
        "offset_ms": millis(detail.offset(step.started)),
        "duration_ms": step.duration().map(millis),
        "attempts": step.attempts,
        "outcome": step.status.as_str(),
        "detail": step.status.detail(),
    })
}

fn phase_json(detail: &RunDetail, phase: &PhaseTotal) -> Value {
    json!({
        "phase": phase.phase,
        "steps": phase.steps,
        "unfinished": phase.unfinished,
        "skipped": phase.skipped,
        "node_time_ms": millis(phase.node_time),
        "wall_clock_ms": millis(phase.wall_clock),
        "offset_ms": phase.first_started.map(|first| millis(detail.offset(first))),
    })
}

pub fn list_text(journal: &Path, cluster: Option<&str>, runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        let of = cluster
            .map(|cluster| format!(" of cluster `{cluster}`"))
            .unwrap_or_default();
        return format!("No runs{of} recorded in {}.\n", journal.display());
    }
    let rows: Vec<[String; 6]> = runs
        .iter()
        .map(|run| {
            [
                run.short_id.clone(),
                run.command.clone(),
                run.cluster.clone(),
                rfc3339(run.started),
                run_duration(run),
                run_status(run.status).to_owned(),
            ]
        })
        .collect();
    let header = [
        "ID",
        "COMMAND",
        "CLUSTER",
        "STARTED (UTC)",
        "DURATION",
        "OUTCOME",
    ]
    .map(str::to_owned);
    table(&[header], &rows)
}

pub fn detail_text(detail: &RunDetail) -> String {
    let run = &detail.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} ({}, cluster {})",
        run.id, run.command, run.cluster
    );
    let _ = writeln!(out, "  operator   {}", run.operator);
    let _ = writeln!(out, "  inventory  sha256:{}", run.inventory_hash);
    let _ = writeln!(out, "  started    {}", rfc3339(run.started));
    match run.ended {
        Some(ended) => {
            let _ = writeln!(
                out,
                "  ended      {} after {}",
                rfc3339(ended),
                run_duration(run)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  ended      no end recorded; the last step recorded was at +{}",
                duration(run.recorded_span())
            );
        }
    }
    let _ = writeln!(out, "  outcome    {}", run_status(run.status));

    let _ = writeln!(
        out,
        "\nTimeline (offset from the run's start, duration, attempts, outcome):"
    );
    for timeline in detail.nodes() {
        let _ = writeln!(out, "  {}", timeline.node.unwrap_or("cluster-wide"));
        let rows: Vec<[String; 5]> = timeline
            .steps
            .iter()
            .map(|step| {
                [
                    format!("+{}", duration(detail.offset(step.started))),
                    step.step.clone(),
                    step.duration().map_or_else(|| "—".to_owned(), duration),
                    step.attempts
                        .map_or_else(|| "—".to_owned(), |attempts| format!("{attempts}×")),
                    step_status(step),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&[], &rows), "    "));
    }

    let phases = detail.phases();
    if !phases.is_empty() {
        let _ = writeln!(
            out,
            "\nPhases (node time: summed over nodes; wall clock: first start to last end):"
        );
        let header = ["PHASE", "STEPS", "NODE TIME", "WALL CLOCK", "NOTE"].map(str::to_owned);
        let rows: Vec<[String; 5]> = phases
            .iter()
            .map(|phase| {
                let mut notes = Vec::new();
                if phase.unfinished > 0 {
                    notes.push(format!("{} without an end", phase.unfinished));
                }
                if phase.skipped > 0 {
                    notes.push(format!("{} skipped", phase.skipped));
                }
                [
                    phase.phase.clone(),
                    phase.steps.to_string(),
                    duration(phase.node_time),
                    duration(phase.wall_clock),
                    notes.join(", "),
                ]
            })
            .collect();
        out.push_str(&indent(&table(&[header], &rows), "  "));
    }
    out
}

fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::NoEndRecorded => "interrupted (no end recorded)",
    }
}

fn step_status(step: &StepRecord) -> String {
    match &step.status {
        StepStatus::Succeeded => "succeeded".to_owned(),
        StepStatus::Failed(error) => format!("failed: {error}"),
        StepStatus::Skipped(reason) => format!("skipped: {reason}"),
        StepStatus::NoEndRecorded => "no end recorded".to_owned(),
    }
}

/// A run without an end lasted at least as long as its last record.
fn run_duration(run: &RunSummary) -> String {
    run.duration()
        .map_or_else(|| format!("≥{}", duration(run.recorded_span())), duration)
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(header: &[[String; N]], rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in header.iter().chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in header.iter().chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}\n"))
        .collect()
}

/// `0.4s`, `12.0s`, `2m05s`, `1h02m`: precise where steps are short,
/// readable where runs are long.
fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60)
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn unix_millis(at: SystemTime) -> u64 {
    millis(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
