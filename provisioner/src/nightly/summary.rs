//! What a nightly run found: one case per phase per node, plus the
//! cluster-wide phases (leftovers of an earlier run, teardown).

use std::time::Duration;

use serde::Serialize;

use crate::engine::Timeline;

/// One phase of one node (or of the whole copy, `node` = `cluster`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NightlyCase {
    pub node: String,
    pub phase: String,
    pub seconds: f64,
    /// Why the phase failed; `None` when it passed.
    pub failure: Option<String>,
}

impl NightlyCase {
    pub fn cluster(phase: &str, duration: Duration, failure: Option<String>) -> Self {
        Self {
            node: "cluster".into(),
            phase: phase.into(),
            seconds: duration.as_secs_f64(),
            failure,
        }
    }
}

/// The whole run, as `--summary`/`-o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NightlySummary {
    /// The copy's cluster name (its VMs are tagged `kiln-<name>`).
    pub cluster: String,
    pub profile: String,
    pub passed: bool,
    pub seconds: f64,
    /// VMs left running on purpose (`--keep-on-failure`).
    pub kept: bool,
    pub cases: Vec<NightlyCase>,
}

impl NightlySummary {
    pub fn new(cluster: &str, profile: &str) -> Self {
        Self {
            cluster: cluster.into(),
            profile: profile.into(),
            passed: false,
            seconds: 0.0,
            kept: false,
            cases: Vec::new(),
        }
    }

    /// One case per phase per node the run's timeline saw; `nodes` without
    /// any step get a failed case, so a node that never started shows up.
    pub fn add_run(&mut self, timeline: &Timeline, nodes: &[String], why_missing: &str) {
        for node in nodes {
            let phases = timeline.phases(node);
            if phases.is_empty() {
                self.cases.push(NightlyCase {
                    node: node.clone(),
                    phase: "create".into(),
                    seconds: 0.0,
                    failure: Some(why_missing.to_owned()),
                });
            }
            for span in phases {
                self.cases.push(NightlyCase {
                    node: node.clone(),
                    phase: span.phase.as_str().into(),
                    seconds: span.duration.as_secs_f64(),
                    failure: span.failure,
                });
            }
        }
    }

    /// Passed when every case passed (and there was at least one).
    pub fn conclude(&mut self, elapsed: Duration) {
        self.seconds = elapsed.as_secs_f64();
        self.passed =
            !self.cases.is_empty() && self.cases.iter().all(|case| case.failure.is_none());
    }
}
