//! Phases: the engine's steps grouped into what an operator (and a drill's
//! RTO report) talks about — allocate, clone, boot, SSH, agent, healthy.

use std::time::{Duration, SystemTime};

use crate::record::{RunDetail, StepRecord, StepStatus, since};

/// Which steps make up each named phase. A step not listed here is a phase
/// of its own under its own name, so a new step (a cluster bootstrap, a
/// drill's `detect`) shows up in the totals without a change here.
const PHASES: &[(&str, &[&str])] = &[
    ("allocate", &["allocate", "allocate_vmid"]),
    ("clone", &["clone"]),
    ("configure", &["configure", "cloud_init"]),
    ("resize", &["resize"]),
    ("boot", &["start", "boot", "reboot"]),
    (
        "wait_ip",
        &["wait_ip", "wait_guest_agent", "guest_agent_ip"],
    ),
    ("ssh", &["ssh", "wait_ssh"]),
    ("agent", &["agent", "deploy_agent"]),
    ("healthy", &["healthy", "wait_healthy"]),
];

/// The phase `step` belongs to.
pub fn phase_of(step: &str) -> &str {
    PHASES
        .iter()
        .find(|(_, steps)| steps.contains(&step))
        .map_or(step, |(phase, _)| phase)
}

/// The time one phase took in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseTotal {
    pub phase: String,
    /// Steps of this phase that ran to an end (succeeded or failed).
    pub steps: usize,
    /// Steps that started and have no end recorded; their time is not in
    /// the totals.
    pub unfinished: usize,
    /// Steps that never ran.
    pub skipped: usize,
    /// The sum of the steps' durations over all nodes: the work done.
    pub node_time: Duration,
    /// From the first start to the last end of its steps: what the phase
    /// cost the run in time when the nodes went in parallel.
    pub wall_clock: Duration,
    /// When its first step started; `None` when none ran.
    pub first_started: Option<SystemTime>,
}

/// Totals per phase, in the order the phases began (phases of skipped
/// steps only come last).
pub fn phase_totals(steps: &[StepRecord]) -> Vec<PhaseTotal> {
    let mut totals: Vec<(PhaseTotal, Option<SystemTime>)> = Vec::new();
    for step in steps {
        let phase = phase_of(&step.step);
        let index = match totals.iter().position(|(total, _)| total.phase == phase) {
            Some(index) => index,
            None => {
                totals.push((empty(phase), None));
                totals.len() - 1
            }
        };
        let (total, last_ended) = &mut totals[index];
        match (&step.status, step.ended) {
            (StepStatus::Skipped(_), _) => total.skipped += 1,
            (StepStatus::NoEndRecorded, _) | (_, None) => {
                total.unfinished += 1;
                total.first_started = earliest(total.first_started, step.started);
            }
            (StepStatus::Succeeded | StepStatus::Failed(_), Some(ended)) => {
                total.steps += 1;
                total.node_time += since(step.started, ended);
                total.first_started = earliest(total.first_started, step.started);
                *last_ended = Some(last_ended.map_or(ended, |last| last.max(ended)));
            }
        }
    }
    let mut totals: Vec<PhaseTotal> = totals
        .into_iter()
        .map(|(mut total, last_ended)| {
            if let (Some(first), Some(last)) = (total.first_started, last_ended) {
                total.wall_clock = since(first, last);
            }
            total
        })
        .collect();
    // Stable: phases that began at the same moment keep the steps' order.
    totals.sort_by_key(|total| (total.first_started.is_none(), total.first_started));
    totals
}

fn empty(phase: &str) -> PhaseTotal {
    PhaseTotal {
        phase: phase.to_owned(),
        steps: 0,
        unfinished: 0,
        skipped: 0,
        node_time: Duration::ZERO,
        wall_clock: Duration::ZERO,
        first_started: None,
    }
}

fn earliest(current: Option<SystemTime>, candidate: SystemTime) -> Option<SystemTime> {
    Some(current.map_or(candidate, |current| current.min(candidate)))
}

impl RunDetail {
    /// Time per phase, in the order the phases began.
    pub fn phases(&self) -> Vec<PhaseTotal> {
        phase_totals(&self.steps)
    }
}
