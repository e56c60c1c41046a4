//! A drill's report: what broke, when it was noticed, how long each phase
//! of the recovery took, and the verdict against the RTO budget. Rendered
//! as Markdown for people and JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::scenario::{Scenario, Target};

/// One moment of the drill, seconds after it broke the first VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub at_seconds: f64,
    pub what: String,
}

/// One stretch of the recovery. The phases follow each other without gaps,
/// so they add up to the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportPhase {
    /// `detect`, `prepare` (lock, observe, plan), then the engine's phases.
    pub phase: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillReport {
    pub cluster: String,
    pub scenario: Scenario,
    pub targets: Vec<Target>,
    /// The journal's run id of the recovery.
    pub recovery_run: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    pub time_to_detect_seconds: f64,
    pub phases: Vec<ReportPhase>,
    /// From the break until every node reported healthy again.
    pub rto_seconds: f64,
    pub rto_budget_seconds: Option<f64>,
    pub recovered: bool,
    /// Recovered, and within the budget when one was given.
    pub passed: bool,
    /// Why it did not pass, when it did not.
    pub failure: Option<String>,
}

impl DrillReport {
    /// Fills in the verdict from the phases, the budget and a failure.
    pub fn conclude(&mut self, budget: Option<Duration>, failure: Option<String>) {
        self.rto_budget_seconds = budget.map(|budget| budget.as_secs_f64());
        self.recovered = failure.is_none();
        let within = budget.is_none_or(|budget| self.rto_seconds <= budget.as_secs_f64());
        self.failure = failure.or_else(|| {
            (!within).then(|| {
                format!(
                    "recovery took {:.1} s, over the budget of {:.1} s",
                    self.rto_seconds,
                    self.rto_budget_seconds.unwrap_or_default()
                )
            })
        });
        self.passed = self.failure.is_none();
    }

    pub fn to_markdown(&self) -> String {
        let mut text = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            text,
            "# Drill `{}` on cluster `{}`: {verdict}\n",
            self.scenario.as_str(),
            self.cluster
        );
        let _ = writeln!(text, "| target | Proxmox node | VMID |\n|---|---|---|");
        for target in &self.targets {
            let _ = writeln!(
                text,
                "| {} | {} | {} |",
                target.node, target.pve_node, target.vmid
            );
        }
        let _ = writeln!(text, "\n## Recovery time\n");
        let _ = writeln!(text, "| phase | seconds |\n|---|---:|");
        for phase in &self.phases {
            let _ = writeln!(text, "| {} | {:.1} |", phase.phase, phase.seconds);
        }
        let _ = writeln!(text, "| **total (RTO)** | **{:.1}** |", self.rto_seconds);
        let _ = writeln!(
            text,
            "\nTime to detect: {:.1} s. Budget: {}.",
            self.time_to_detect_seconds,
            self.rto_budget_seconds
                .map_or_else(|| "none".to_owned(), |budget| format!("{budget:.1} s"))
        );
        if let Some(failure) = &self.failure {
            let _ = writeln!(text, "\n**Why it failed:** {failure}");
        }
        let _ = writeln!(text, "\n## Timeline\n");
        for entry in &self.timeline {
            let _ = writeln!(text, "- +{:.1} s: {}", entry.at_seconds, entry.what);
        }
        if let Some(run) = &self.recovery_run {
            let _ = writeln!(text, "\nRecovery run: `kiln runs show {run}`.");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DrillReport {
        DrillReport {
            cluster: "lab".into(),
            scenario: Scenario::NodeLoss,
            targets: vec![Target {
                node: "lab2".into(),
                pve_node: "pve2".into(),
                vmid: 101,
            }],
            recovery_run: Some("0190".into()),
            timeline: vec![TimelineEntry {
                at_seconds: 0.0,
                what: "destroyed lab2".into(),
            }],
            time_to_detect_seconds: 15.0,
            phases: vec![
                ReportPhase {
                    phase: "detect".into(),
                    seconds: 15.0,
                },
                ReportPhase {
                    phase: "clone".into(),
                    seconds: 5.0,
                },
            ],
            rto_seconds: 20.0,
            rto_budget_seconds: None,
            recovered: false,
            passed: false,
            failure: None,
        }
    }

    #[test]
    fn the_budget_decides_the_verdict() {
        let mut within = report();
        within.conclude(Some(Duration::from_secs(30)), None);
        assert!(within.passed && within.recovered);
        let mut over = report();
        over.conclude(Some(Duration::from_secs(10)), None);
        assert!(!over.passed && over.recovered);
        assert_eq!(
            over.failure.as_deref(),
            Some("recovery took 20.0 s, over the budget of 10.0 s")
        );
        let mut broken = report();
        broken.conclude(None, Some("node lab2 did not come back".into()));
        assert!(!broken.passed && !broken.recovered);
    }

    #[test]
    fn markdown_names_the_targets_phases_and_verdict() {
        let mut failed = report();
        failed.conclude(Some(Duration::from_secs(10)), None);
        let text = failed.to_markdown();
        assert!(
            text.starts_with("# Drill `node-loss` on cluster `lab`: FAILED"),
            "{text}"
        );
        assert!(text.contains("| lab2 | pve2 | 101 |"), "{text}");
        assert!(text.contains("| clone | 5.0 |"), "{text}");
        assert!(text.contains("| **total (RTO)** | **20.0** |"), "{text}");
        assert!(text.contains("over the budget of 10.0 s"), "{text}");
        assert!(text.contains("kiln runs show 0190"), "{text}");
    }
}
