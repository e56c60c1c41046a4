//! A run's step timings, gathered from its events, grouped into the phases
//! people talk about (clone, boot, SSH, agent, healthy, storage): what a drill's RTO
//! report and a nightly's JUnit file are built from.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use kiln_journal::events::{Event, EventSink, StepOutcome};

/// A stretch of a node's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Destroy,
    /// Allocating the VMID and cloning the template (one Proxmox task).
    Clone,
    /// Configure, resize, start or reboot, until the guest agent reports the address.
    Boot,
    Ssh,
    Agent,
    Healthy,
    /// The node's initiator name and its storage check (with `storage`).
    Storage,
}

impl Phase {
    /// The phase a pipeline step belongs to.
    pub fn of_step(step: &str) -> Option<Self> {
        Some(match step {
            "destroy" => Self::Destroy,
            "clone" => Self::Clone,
            "configure" | "resize" | "start" | "reboot" | "wait_ip" => Self::Boot,
            "wait_ssh" => Self::Ssh,
            "deploy_agent" => Self::Agent,
            "healthy" => Self::Healthy,
            "initiator" | "storage_check" => Self::Storage,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Clone => "clone",
            Self::Boot => "boot",
            Self::Ssh => "ssh",
            Self::Agent => "agent",
            Self::Healthy => "healthy",
            Self::Storage => "storage",
        }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub node: Option<String>,
    pub step: String,
    pub started: SystemTime,
    /// `None` while it runs (or when the run was cut short).
    pub finished: Option<SystemTime>,
    pub outcome: Option<StepOutcome>,
}

/// The time a node spent in one phase. The spans of a node follow each
/// other without gaps: a phase lasts from its first step's start to the next
/// phase's first step's start, so a node's phases add up to its total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSpan {
    pub phase: Phase,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    #[serde(skip)]
    pub start: SystemTime,
    /// The first failure inside the phase, if any.
    pub failure: Option<String>,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Collects step events; share it with the run as one of its sinks.
#[derive(Debug, Default)]
pub struct Timeline {
    steps: Mutex<Vec<StepRecord>>,
}

impl EventSink for Timeline {
    fn emit(&self, event: &Event) {
        let Ok(mut steps) = self.steps.lock() else {
            return;
        };
        match event {
            Event::StepStarted { node, step, at, .. } => steps.push(StepRecord {
                node: node.clone(),
                step: step.clone(),
                started: *at,
                finished: None,
                outcome: None,
            }),
            Event::StepFinished {
                node,
                step,
                at,
                outcome,
                ..
            } => {
                let open = steps.iter_mut().rev().find(|record| {
                    &record.node == node && &record.step == step && record.finished.is_none()
                });
                match open {
                    Some(record) => {
                        record.finished = Some(*at);
                        record.outcome = Some(outcome.clone());
                    }
                    // A step skipped before it started has no start event.
                    None => steps.push(StepRecord {
                        node: node.clone(),
                        step: step.clone(),
                        started: *at,
                        finished: Some(*at),
                        outcome: Some(outcome.clone()),
                    }),
                }
            }
            Event::RunStarted { .. } | Event::RunFinished { .. } => {}
        }
    }
}

impl Timeline {
    pub fn steps(&self) -> Vec<StepRecord> {
        self.steps
            .lock()
            .map(|steps| steps.clone())
            .unwrap_or_default()
    }

    /// The nodes that had steps, in the order they first appeared.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        for record in self.steps() {
            if let Some(node) = record.node
                && !nodes.contains(&node)
            {
                nodes.push(node);
            }
        }
        nodes
    }

    /// `node`'s phases in the order they started.
    pub fn phases(&self, node: &str) -> Vec<PhaseSpan> {
        let mut records: Vec<StepRecord> = self
            .steps()
            .into_iter()
            .filter(|record| record.node.as_deref() == Some(node))
            .collect();
        records.sort_by_key(|record| record.started);
        let mut spans: Vec<PhaseSpan> = Vec::new();
        let mut end = None;
        for record in &records {
            let Some(phase) = Phase::of_step(&record.step) else {
                continue;
            };
            let failure = match &record.outcome {
                Some(StepOutcome::Failed(reason)) => Some(format!("{}: {reason}", record.step)),
                Some(StepOutcome::Skipped(reason)) => {
                    Some(format!("{} skipped: {reason}", record.step))
                }
                Some(StepOutcome::Succeeded) => None,
                // Asked for after the run: a step still open was cut short.
                None => Some(format!("{} did not finish", record.step)),
            };
            end = end.max(record.finished.or(Some(record.started)));
            match spans.last_mut() {
                Some(span) if span.phase == phase => {
                    span.failure = span.failure.take().or(failure);
                }
                _ => spans.push(PhaseSpan {
                    phase,
                    duration: Duration::ZERO,
                    start: record.started,
                    failure,
                }),
            }
        }
        let ends: Vec<SystemTime> = spans
            .iter()
            .skip(1)
            .map(|span| span.start)
            .chain(end)
            .collect();
        for (span, until) in spans.iter_mut().zip(ends) {
            span.duration = until.duration_since(span.start).unwrap_or_default();
        }
        spans
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use uuid::Uuid;

    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn step(timeline: &Timeline, node: &str, step: &str, from: u64, to: u64, ok: bool) {
        let run = Uuid::nil();
        timeline.emit(&Event::StepStarted {
            run,
            node: Some(node.into()),
            step: step.into(),
            at: at(from),
        });
        timeline.emit(&Event::StepFinished {
            run,
            node: Some(node.into()),
            step: step.into(),
            at: at(to),
            attempts: 1,
            outcome: if ok {
                StepOutcome::Succeeded
            } else {
                StepOutcome::Failed("boom".into())
            },
        });
    }

    #[test]
    fn the_storage_steps_are_the_last_phase_and_count_in_the_total() {
        let timeline = Timeline::default();
        step(&timeline, "a", "healthy", 0, 1_000, true);
        step(&timeline, "a", "initiator", 1_000, 1_500, true);
        step(&timeline, "a", "storage_check", 1_600, 4_000, true);
        let phases = timeline.phases("a");
        let names: Vec<Phase> = phases.iter().map(|span| span.phase).collect();
        assert_eq!(names, [Phase::Healthy, Phase::Storage]);
        assert_eq!(phases[1].duration, Duration::from_millis(3_000));
    }

    #[test]
    fn phases_follow_each_other_and_add_up_to_the_total() {
        let timeline = Timeline::default();
        step(&timeline, "a", "clone", 0, 800, true);
        step(&timeline, "a", "configure", 850, 900, true);
        step(&timeline, "a", "start", 900, 1_100, true);
        step(&timeline, "a", "wait_ip", 1_100, 3_000, true);
        step(&timeline, "b", "clone", 10, 20, false);
        step(&timeline, "a", "wait_ssh", 3_000, 4_500, true);
        let phases = timeline.phases("a");
        let names: Vec<Phase> = phases.iter().map(|span| span.phase).collect();
        assert_eq!(names, [Phase::Clone, Phase::Boot, Phase::Ssh]);
        // The 50 ms between clone and configure count as clone: no gaps.
        assert_eq!(phases[0].duration, Duration::from_millis(850));
        assert_eq!(phases[1].duration, Duration::from_millis(2_150));
        let total: Duration = phases.iter().map(|span| span.duration).sum();
        assert_eq!(total, Duration::from_millis(4_500));
        assert!(phases.iter().all(|span| span.failure.is_none()));
        assert_eq!(timeline.nodes(), ["a", "b"]);
        let failed = timeline.phases("b");
        assert_eq!(failed[0].failure.as_deref(), Some("clone: boom"));
    }

    #[test]
    fn a_step_cut_short_is_a_failure_of_its_phase() {
        let timeline = Timeline::default();
        step(&timeline, "a", "start", 0, 10, true);
        timeline.emit(&Event::StepStarted {
            run: Uuid::nil(),
            node: Some("a".into()),
            step: "wait_ip".into(),
            at: at(10),
        });
        let phases = timeline.phases("a");
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].phase, Phase::Boot);
        assert_eq!(phases[0].failure.as_deref(), Some("wait_ip did not finish"));
    }

    #[test]
    fn a_step_skipped_before_it_started_is_recorded_as_a_failure() {
        let timeline = Timeline::default();
        timeline.emit(&Event::StepFinished {
            run: Uuid::nil(),
            node: Some("a".into()),
            step: "wait_ssh".into(),
            at: at(5),
            attempts: 0,
            outcome: StepOutcome::Skipped("clone failed".into()),
        });
        let phases = timeline.phases("a");
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].phase, Phase::Ssh);
        assert_eq!(
            phases[0].failure.as_deref(),
            Some("wait_ssh skipped: clone failed")
        );
    }
}
