//! A node's state from its latest report, its reporting interval and the
//! time now. Pure: the server, the metrics and `kiln status` all ask here.

use kiln_agent::report::Status;
use serde::{Deserialize, Serialize};

/// A node is stale after this many intervals without a report.
pub const STALE_AFTER_INTERVALS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Every check is ok.
    Healthy,
    /// At least one check warns, none fails.
    Degraded,
    /// At least one check fails.
    Failing,
    /// No report for [`STALE_AFTER_INTERVALS`] intervals: what it last said
    /// may no longer be true.
    Stale,
    /// The node holds a token but has not reported yet.
    Unknown,
}

impl NodeState {
    pub const ALL: [NodeState; 5] = [
        NodeState::Healthy,
        NodeState::Degraded,
        NodeState::Failing,
        NodeState::Stale,
        NodeState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Healthy => "healthy",
            NodeState::Degraded => "degraded",
            NodeState::Failing => "failing",
            NodeState::Stale => "stale",
            NodeState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What the state depends on from a node's latest report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastReport {
    pub overall: Status,
    pub interval_secs: u32,
    /// The collector's clock, not the agent's: a host with a wrong clock
    /// must not look fresh or stale because of it.
    pub received_at_ms: u64,
}

/// The state of a node whose latest report is `last` (`None`: none yet).
pub fn node_state(last: Option<&LastReport>, now_ms: u64) -> NodeState {
    let Some(last) = last else {
        return NodeState::Unknown;
    };
    let stale_after_ms = u64::from(last.interval_secs.max(1))
        .saturating_mul(STALE_AFTER_INTERVALS)
        .saturating_mul(1000);
    if now_ms.saturating_sub(last.received_at_ms) > stale_after_ms {
        return NodeState::Stale;
    }
    match last.overall {
        Status::Ok => NodeState::Healthy,
        Status::Warn => NodeState::Degraded,
        Status::Fail => NodeState::Failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(overall: Status) -> LastReport {
        LastReport {
            overall,
            interval_secs: 15,
            received_at_ms: 1_000_000,
        }
    }

    #[test]
    fn the_worst_check_decides_while_fresh() {
        assert_eq!(
            node_state(Some(&last(Status::Ok)), 1_000_000),
            NodeState::Healthy
        );
        assert_eq!(
            node_state(Some(&last(Status::Warn)), 1_010_000),
            NodeState::Degraded
        );
        assert_eq!(
            node_state(Some(&last(Status::Fail)), 1_045_000),
            NodeState::Failing
        );
    }

    #[test]
    fn three_intervals_without_a_report_is_stale() {
        assert_eq!(
            node_state(Some(&last(Status::Ok)), 1_045_001),
            NodeState::Stale
        );
        assert_eq!(
            node_state(Some(&last(Status::Fail)), 9_000_000),
            NodeState::Stale
        );
    }

    #[test]
    fn no_report_is_unknown_and_a_clock_going_back_is_not_stale() {
        assert_eq!(node_state(None, 5), NodeState::Unknown);
        assert_eq!(node_state(Some(&last(Status::Ok)), 0), NodeState::Healthy);
    }

    #[test]
    fn a_zero_interval_counts_as_one_second() {
        let zero = LastReport {
            interval_secs: 0,
            ..last(Status::Ok)
        };
        assert_eq!(node_state(Some(&zero), 1_003_000), NodeState::Healthy);
        assert_eq!(node_state(Some(&zero), 1_003_001), NodeState::Stale);
    }
}
