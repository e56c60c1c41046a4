//! `system.*`: what the NAS is and which release it runs.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Effect, TruenasClient};
use crate::error::Result;

/// A point in time as TrueNAS sends it: extended JSON `{"$date": ms}` on
/// the wire, an ISO string in the schema; either is accepted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Millis {
        #[serde(rename = "$date")]
        millis: i64,
    },
    Text(String),
}

/// `system.info` (the fields kiln shows; unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct SystemInfo {
    /// `25.10.5` on 25.04 and later (the full string on 24.10).
    pub version: String,
    pub hostname: String,
    pub physmem: i64,
    pub model: String,
    pub cores: i64,
    pub physical_cores: i64,
    pub uptime_seconds: f64,
    pub system_serial: Option<String>,
    pub system_product: Option<String>,
    pub system_manufacturer: Option<String>,
    pub timezone: String,
    pub ecc_memory: bool,
    pub buildtime: Timestamp,
    pub boottime: Timestamp,
    pub datetime: Timestamp,
    #[serde(default)]
    pub license: Option<Value>,
}

impl TruenasClient {
    /// `system.version`, e.g. `TrueNAS-25.10.5` (no "SCALE" since 25.04).
    pub async fn system_version(&self) -> Result<String> {
        self.call("system.version", json!([]), Effect::Reads).await
    }

    /// `system.version_short`, e.g. `25.10.5`.
    pub async fn system_version_short(&self) -> Result<String> {
        self.call("system.version_short", json!([]), Effect::Reads)
            .await
    }

    /// `system.info` (needs `READONLY_ADMIN`).
    pub async fn system_info(&self) -> Result<SystemInfo> {
        self.call("system.info", json!([]), Effect::Reads).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_either_form() {
        let millis: Timestamp =
            serde_json::from_value(json!({"$date": 1_700_000_000_000_i64})).unwrap();
        assert_eq!(
            millis,
            Timestamp::Millis {
                millis: 1_700_000_000_000
            }
        );
        let text: Timestamp = serde_json::from_value(json!("2026-12-02T16:00:00")).unwrap();
        assert_eq!(text, Timestamp::Text("2026-12-02T16:00:00".into()));
    }
}
