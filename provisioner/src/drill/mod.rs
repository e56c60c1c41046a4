//! Disaster-recovery drills: break part of the cluster on purpose, measure
//! how long the collector takes to notice and kiln takes to bring it back.
//! The orchestration is `kiln drill` (cli/drill.rs); here are the pieces it
//! is built from: which VMs a scenario breaks, and the report.

mod report;
mod scenario;

pub use report::{DrillReport, ReportPhase, TimelineEntry};
pub use scenario::{Scenario, Target, TargetError, targets};
