//! `/metrics`: per-node state, per-check status and report age, computed
//! from a snapshot at each scrape, and the ingest counters, kept for the
//! collector's life. OpenMetrics text via prometheus-client, which escapes
//! label values (node and check names come from reports).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use kiln_agent::report::Status;

use crate::nodes::NodeView;
use crate::state::NodeState;

/// The content type of [`IngestCounters::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why a report was refused, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// 400: not JSON, not a report, or another schema version.
    Malformed,
    /// 401: no token, or one the registry does not know.
    Unauthorized,
    /// 403: a report for another node than the token's.
    Forbidden,
    /// 408: the request took too long.
    Timeout,
    /// 409: a sequence number already seen or passed.
    Replayed,
    /// 413: a body over the limit.
    TooLarge,
    /// 429: too many reports too fast.
    RateLimited,
    /// 5xx: the collector could not store it.
    Internal,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Malformed,
        RejectReason::Unauthorized,
        RejectReason::Forbidden,
        RejectReason::Timeout,
        RejectReason::Replayed,
        RejectReason::TooLarge,
        RejectReason::RateLimited,
        RejectReason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::Forbidden => "forbidden",
            RejectReason::Timeout => "timeout",
            RejectReason::Replayed => "replayed",
            RejectReason::TooLarge => "too_large",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::Internal => "internal",
        }
    }

    /// The reason a refusal with this HTTP status stands for.
    pub fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            400 => RejectReason::Malformed,
            401 => RejectReason::Unauthorized,
            403 => RejectReason::Forbidden,
            408 => RejectReason::Timeout,
            409 => RejectReason::Replayed,
            413 => RejectReason::TooLarge,
            429 => RejectReason::RateLimited,
            500..=599 => RejectReason::Internal,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    cluster: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    cluster: String,
    node: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    cluster: String,
    node: String,
    check: String,
}

/// The counters of reports in and refused.
#[derive(Debug, Default)]
pub struct IngestCounters {
    received: Counter,
    accepted: Counter,
    rejected: Family<ReasonLabels, Counter>,
}

impl IngestCounters {
    pub fn new() -> Self {
        let counters = Self::default();
        // Every reason from the start, so a rate() over them has a zero to begin at.
        for reason in RejectReason::ALL {
            let _ = counters.rejected.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            });
        }
        counters
    }

    pub fn received(&self) {
        self.received.inc();
    }

    pub fn accepted(&self) {
        self.accepted.inc();
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// The exposition for a scrape: these counters and `nodes` as they are now.
    pub fn render(&self, nodes: &[NodeView]) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("kiln");
        registry.register(
            "collector_reports_received",
            "Reports that reached POST /api/v1/reports",
            self.received.clone(),
        );
        registry.register(
            "collector_reports_accepted",
            "Reports stored",
            self.accepted.clone(),
        );
        registry.register(
            "collector_reports_rejected",
            "Reports refused, by reason",
            self.rejected.clone(),
        );

        let state = Family::<StateLabels, Gauge>::default();
        let checks = Family::<CheckLabels, Gauge>::default();
        let age = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        for node in nodes {
            for candidate in NodeState::ALL {
                let labels = StateLabels {
                    cluster: node.cluster.clone(),
                    node: node.node.clone(),
                    state: candidate.as_str(),
                };
                state
                    .get_or_create(&labels)
                    .set(i64::from(candidate == node.state));
            }
            for check in &node.checks {
                let labels = CheckLabels {
                    cluster: node.cluster.clone(),
                    node: node.node.clone(),
                    check: check.name.clone(),
                };
                checks
                    .get_or_create(&labels)
                    .set(status_value(check.status));
            }
            if let Some(seconds) = node.last_report_age_secs {
                let labels = NodeLabels {
                    cluster: node.cluster.clone(),
                    node: node.node.clone(),
                };
                age.get_or_create(&labels).set(seconds);
            }
        }
        registry.register(
            "node_state",
            "1 for the node's current state (healthy, degraded, failing, stale, unknown), 0 for the others",
            state,
        );
        registry.register(
            "node_check_status",
            "Each check of the node's latest report: 0 ok, 1 warn, 2 fail",
            checks,
        );
        registry.register(
            "node_last_report_age_seconds",
            "Seconds since the collector received the node's latest report",
            age,
        );
        let mut text = String::new();
        encode(&mut text, &registry)?;
        Ok(text)
    }
}

fn status_value(status: Status) -> i64 {
    match status {
        Status::Ok => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    }
}
