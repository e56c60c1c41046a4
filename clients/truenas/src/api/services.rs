//! `service.*`: `iscsitarget` and `nfs` enabled (start on boot) and running.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Filter, query_params};
use crate::client::{Effect, TruenasClient};
use crate::error::{Error, Result};

/// A `service.query` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Service {
    pub id: i64,
    /// `iscsitarget`, `nfs`, …
    pub service: String,
    /// Starts on boot.
    pub enable: bool,
    /// `RUNNING`, `STOPPED`, …
    pub state: String,
    #[serde(default)]
    pub pids: Vec<i64>,
}

impl Service {
    pub fn is_running(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// `service.control`'s verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServiceVerb {
    Start,
    Stop,
    Restart,
    Reload,
}

impl ServiceVerb {
    /// The 25.04 method for this verb (`service.start`, …).
    fn legacy_method(self) -> &'static str {
        match self {
            ServiceVerb::Start => "service.start",
            ServiceVerb::Stop => "service.stop",
            ServiceVerb::Restart => "service.restart",
            ServiceVerb::Reload => "service.reload",
        }
    }
}

impl TruenasClient {
    pub async fn services(&self, filters: &[Filter]) -> Result<Vec<Service>> {
        self.call("service.query", query_params(filters), Effect::Reads)
            .await
    }

    /// `service.update [name, {"enable": …}]`: start on boot or not.
    pub async fn set_service_enabled(&self, service: &str, enable: bool) -> Result<i64> {
        self.call(
            "service.update",
            json!([service, {"enable": enable}]),
            Effect::Changes,
        )
        .await
    }

    /// `service.control [verb, name, {}]`, a job, awaited. TrueNAS 25.04
    /// has no `service.control`; there the verb's own method is called.
    /// `silent: false` makes a failed start an error, not a quiet `false`.
    pub async fn control_service(&self, verb: ServiceVerb, service: &str) -> Result<()> {
        let params = json!([verb, service, {"silent": false}]);
        let done = match self.call_job("service.control", params).await {
            Err(Error::MethodNotFound { .. }) => {
                self.call_value(
                    verb.legacy_method(),
                    json!([service, {"silent": false}]),
                    Effect::Changes,
                )
                .await?
            }
            other => other?,
        };
        if done.as_bool() == Some(false) {
            return Err(Error::Call {
                endpoint: self.endpoint().to_owned(),
                method: "service.control".to_owned(),
                errno: None,
                errname: "ESERVICESTARTFAILURE".to_owned(),
                reason: format!("{verb:?} {service} reported failure"),
            });
        }
        Ok(())
    }
}
