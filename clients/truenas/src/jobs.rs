//! Job methods (`"job": true` in the schema, e.g. `service.control`): the
//! call answers a job id at once, the work goes on in the background.
//!
//! kiln keeps TrueNAS's default ("legacy") job replies, which 25.04 and 26
//! give alike, and waits by looking the job up with `core.get_jobs`. The
//! `core.get_jobs` subscription wakes the waiter as soon as the job
//! changes; the poll interval only matters when no update comes. The wait
//! is bounded by [`ClientConfig::job_timeout`](crate::ClientConfig).

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::client::{Effect, TruenasClient};
use crate::error::{Error, Result};

/// One `core.get_jobs` item, the fields kiln reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Job {
    /// `WAITING`, `RUNNING`, `SUCCESS`, `FAILED` or `ABORTED`.
    state: String,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    exc_info: Option<JobExcInfo>,
}

#[derive(Debug, Clone, Deserialize)]
struct JobExcInfo {
    #[serde(default)]
    repr: Option<String>,
}

impl Job {
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "SUCCESS" | "FAILED" | "ABORTED")
    }

    /// The most telling error text the job record holds.
    fn error_text(&self) -> String {
        self.error
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| self.exc_info.as_ref().and_then(|i| i.repr.clone()))
            .unwrap_or_else(|| "no error message".to_owned())
    }
}

impl TruenasClient {
    /// Calls a job method and waits for the job; answers the job's result.
    pub(crate) async fn call_job(&self, method: &str, params: Value) -> Result<Value> {
        // Subscribe before the job exists, so no update is missed.
        let mut updates = self.job_updates().await?;
        let reply = self.call_value(method, params, Effect::Changes).await?;
        let Some(job_id) = reply.as_u64() else {
            // A server with new-style jobs answers the result directly.
            return Ok(reply);
        };
        let deadline = Instant::now() + self.config().job_timeout;
        // Each pass either finishes, or waits until an update or the poll
        // interval; the deadline ends the loop.
        loop {
            let job = self.job(job_id, method).await?;
            match job.state.as_str() {
                "SUCCESS" => return Ok(job.result),
                _ if job.finished() => {
                    return Err(Error::JobFailed {
                        endpoint: self.endpoint().to_owned(),
                        method: method.to_owned(),
                        job_id,
                        state: job.state.clone(),
                        error: job.error_text(),
                    });
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::JobTimeout {
                    endpoint: self.endpoint().to_owned(),
                    method: method.to_owned(),
                    job_id,
                    state: job.state,
                    after: self.config().job_timeout,
                });
            }
            let pause = self.config().job_poll_interval.min(deadline - now);
            let update_for_this_job = async {
                loop {
                    match updates.recv().await {
                        Ok(id) if id == job_id => return,
                        Ok(_) => {}
                        // Missed updates may have been ours: look now.
                        Err(RecvError::Lagged(_)) => return,
                        // The connection was replaced: only polling is left.
                        Err(RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            let _ = tokio::time::timeout(pause, update_for_this_job).await;
        }
    }

    /// `core.get_jobs [[["id", "=", id]]]`.
    pub(crate) async fn job(&self, job_id: u64, method: &str) -> Result<Job> {
        let jobs: Vec<Job> = self
            .call(
                "core.get_jobs",
                json!([[["id", "=", job_id]]]),
                Effect::Reads,
            )
            .await?;
        jobs.into_iter().next().ok_or_else(|| Error::Decode {
            endpoint: self.endpoint().to_owned(),
            method: "core.get_jobs".to_owned(),
            reason: format!("job {job_id} of {method} is not listed"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_error_text_prefers_error_then_exc_info() {
        let job: Job = serde_json::from_value(json!({
            "id": 4, "state": "FAILED", "error": "[EFAULT] nfs failed to start",
            "exc_info": {"repr": "CallError(...)", "type": "CallError", "errno": 14, "extra": null}
        }))
        .unwrap();
        assert!(job.finished());
        assert_eq!(job.error_text(), "[EFAULT] nfs failed to start");
        let job: Job = serde_json::from_value(json!({
            "id": 5, "state": "ABORTED", "error": null,
            "exc_info": {"repr": "aborted by user", "type": null, "errno": null, "extra": null}
        }))
        .unwrap();
        assert_eq!(job.error_text(), "aborted by user");
        let running: Job = serde_json::from_value(json!({"id": 6, "state": "RUNNING"})).unwrap();
        assert!(!running.finished());
    }
}
