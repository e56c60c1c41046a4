//! What the journal gives back: runs, their steps, and views of the steps
//! per node and per phase.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

/// How a run ended, as far as the journal knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
    Interrupted,
    /// No end was written: the process died (SIGKILL, power loss), or the
    /// run is still going.
    NoEndRecorded,
}

impl RunStatus {
    /// The word `-o json` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::NoEndRecorded => "no_end_recorded",
        }
    }
}

/// One line of `kiln runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub id: Uuid,
    /// The shortest prefix of the id (eight characters at least) that no
    /// other run in the journal shares when the list was made.
    pub short_id: String,
    pub command: String,
    pub cluster: String,
    pub inventory_hash: String,
    pub operator: String,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    pub status: RunStatus,
    /// The latest time any of its steps recorded; for a run without an end,
    /// the last sign of life.
    pub last_recorded: Option<SystemTime>,
}

impl RunSummary {
    /// Start to end; `None` without an end.
    pub fn duration(&self) -> Option<Duration> {
        self.ended.map(|ended| since(self.started, ended))
    }

    /// Start to the last thing recorded: how long a run without an end
    /// lasted at least.
    pub fn recorded_span(&self) -> Duration {
        let last = self.ended.or(self.last_recorded).unwrap_or(self.started);
        since(self.started, last)
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Succeeded,
    /// The error, as the engine reported it.
    Failed(String),
    /// Why it did not run.
    Skipped(String),
    /// Started, and no end was written.
    NoEndRecorded,
}

impl StepStatus {
    /// The word `-o json` uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed(_) => "failed",
            Self::Skipped(_) => "skipped",
            Self::NoEndRecorded => "no_end_recorded",
        }
    }

    /// The error of a failed step, the reason of a skipped one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Failed(detail) | Self::Skipped(detail) => Some(detail),
            Self::Succeeded | Self::NoEndRecorded => None,
        }
    }
}

/// One step of one node (or of the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// `None` for a cluster-wide step.
    pub node: Option<String>,
    pub step: String,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    /// `None` until it ends; 0 for a step skipped before it started.
    pub attempts: Option<u32>,
    pub status: StepStatus,
}

impl StepRecord {
    pub fn duration(&self) -> Option<Duration> {
        self.ended.map(|ended| since(self.started, ended))
    }

    /// Whether it ran at all: skipped steps take no time and have no place
    /// on a timeline's clock.
    pub fn ran(&self) -> bool {
        !matches!(self.status, StepStatus::Skipped(_))
    }
}

/// `kiln runs show`: a run and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDetail {
    pub summary: RunSummary,
    /// In the order they started.
    pub steps: Vec<StepRecord>,
}

/// The steps of one node, in the order they started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTimeline<'a> {
    /// `None`: the cluster-wide steps.
    pub node: Option<&'a str>,
    pub steps: Vec<&'a StepRecord>,
}

impl RunDetail {
    /// Cluster-wide steps first, then each node by name.
    pub fn nodes(&self) -> Vec<NodeTimeline<'_>> {
        let mut nodes: BTreeMap<Option<&str>, Vec<&StepRecord>> = BTreeMap::new();
        for step in &self.steps {
            nodes.entry(step.node.as_deref()).or_default().push(step);
        }
        nodes
            .into_iter()
            .map(|(node, steps)| NodeTimeline { node, steps })
            .collect()
    }

    /// How far into the run `at` is.
    pub fn offset(&self, at: SystemTime) -> Duration {
        since(self.summary.started, at)
    }
}

/// `later - earlier`, or zero when the clock went backwards in between.
pub fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}
