//! The report wire format: JSON, one object per POST, versioned by [`Report::schema`].

use serde::{Deserialize, Serialize};

/// The collector's endpoint for reports (`POST`, `Authorization: Bearer TOKEN`).
pub const REPORTS_PATH: &str = "/api/v1/reports";

/// The version of [`Report`] this crate writes; the collector refuses others with 400.
pub const REPORT_SCHEMA: u32 = 1;

/// One snapshot of a host's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`] for reports this crate writes.
    pub schema: u32,
    /// The kiln node name; the collector checks it against the token's node (403 otherwise).
    pub node: String,
    /// The kiln cluster name.
    pub cluster: String,
    /// Strictly increasing per node across agent restarts; the collector answers 409 to a
    /// sequence number it has already seen or passed.
    pub sequence: u64,
    /// When the snapshot was taken, milliseconds since the Unix epoch (UTC).
    pub taken_at_ms: u64,
    /// How often this agent reports; the collector calls a node stale after three intervals
    /// without a report.
    pub interval_secs: u32,
    /// `kiln-agent`'s version (`CARGO_PKG_VERSION`).
    pub agent_version: String,
    pub checks: Vec<Check>,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Dotted and stable, e.g. `system.memory`, `unit.sshd`, `network.dns`, `command.NAME`.
    pub name: String,
    pub status: Status,
    /// One line for a human: what was measured and, on warn/fail, why.
    pub detail: String,
}

/// A check's verdict, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

impl Report {
    /// The worst status among the checks (`Ok` when there are none).
    pub fn overall(&self) -> Status {
        self.checks
            .iter()
            .map(|check| check.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, status: Status) -> Check {
        Check {
            name: name.into(),
            status,
            detail: String::new(),
        }
    }

    fn report(checks: Vec<Check>) -> Report {
        Report {
            schema: REPORT_SCHEMA,
            node: "cp1".into(),
            cluster: "home".into(),
            sequence: 7,
            taken_at_ms: 1_764_489_600_000,
            interval_secs: 15,
            agent_version: "0.1.0".into(),
            checks,
        }
    }

    #[test]
    fn overall_is_the_worst_check() {
        assert_eq!(report(vec![]).overall(), Status::Ok);
        let mixed = report(vec![
            check("system.memory", Status::Warn),
            check("unit.sshd", Status::Ok),
        ]);
        assert_eq!(mixed.overall(), Status::Warn);
        let failing = report(vec![
            check("system.memory", Status::Warn),
            check("unit.sshd", Status::Fail),
        ]);
        assert_eq!(failing.overall(), Status::Fail);
    }

    #[test]
    fn wire_form_is_stable() {
        let json = serde_json::to_value(report(vec![check("unit.sshd", Status::Fail)])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schema": 1, "node": "cp1", "cluster": "home", "sequence": 7,
                "taken_at_ms": 1_764_489_600_000u64, "interval_secs": 15,
                "agent_version": "0.1.0",
                "checks": [{"name": "unit.sshd", "status": "fail", "detail": ""}]
            })
        );
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back.checks[0].status, Status::Fail);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(report(vec![])).unwrap();
        json["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Report>(json).is_err());
    }
}
