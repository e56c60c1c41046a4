//! Jobs (`middlewared/job.py`): a job method's call starts a job; with `legacy_jobs` (the
//! default) the call answers the job id at once and the client polls `core.get_jobs` or
//! listens to `collection_update` events of `core.get_jobs`; after `core.set_options
//! {"legacy_jobs": false}` the call answers when the job ends, with its result or error.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::auth::USERNAME;
use crate::rpc::{EFAULT, RpcError, errname};

/// The longest anyone waits for a job (every job here ends within a call's time).
const WAIT_LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Job {
    method: String,
    arguments: Value,
    message_ids: Vec<Value>,
    state: &'static str,
    result: Value,
    error: Option<RpcError>,
    started_ms: u64,
    finished_ms: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Job {
    /// `Job.__encode__`: the record `core.get_jobs` returns and events carry.
    fn encode(&self, id: u64) -> Value {
        let (error, exception, exc_info) = match &self.error {
            Some(e) => {
                // `Job.__encode__`: validation errors are type VALIDATION without an errno.
                let (errno, kind) = match e {
                    RpcError::Call { errno, .. } => (json!(errno), "CallError"),
                    RpcError::Validation(_) => (Value::Null, "VALIDATION"),
                    _ => (Value::Null, "Exception"),
                };
                let reason = e.reason();
                let extra = match e.to_error_object().pointer("/data/extra") {
                    Some(v) => v.clone(),
                    None => Value::Null,
                };
                (
                    json!(reason),
                    json!(format!(
                        "Traceback (most recent call last):\n{kind}: {reason}"
                    )),
                    json!({"repr": format!("{kind}({reason:?})"), "type": kind, "errno": errno, "extra": extra}),
                )
            }
            None => (Value::Null, Value::Null, Value::Null),
        };
        json!({
            "id": id,
            "message_ids": self.message_ids,
            "method": self.method,
            "arguments": self.arguments,
            "transient": false,
            "description": null,
            "abortable": false,
            "logs_path": null,
            "logs_excerpt": null,
            "progress": {
                "percent": if self.finished_ms.is_some() { 100 } else { 0 },
                "description": if self.finished_ms.is_some() { "" } else { "Running" },
                "extra": null,
            },
            "result": self.result,
            "result_encoding_error": null,
            "error": error,
            "exception": exception,
            "exc_info": exc_info,
            "state": self.state,
            "time_started": {"$date": self.started_ms},
            "time_finished": self.finished_ms.map_or(Value::Null, |ms| json!({"$date": ms})),
            "credentials": {"type": "API_KEY", "data": {"username": USERNAME, "api_key": {"id": 1, "name": "kiln-lab"}}},
        })
    }
}

/// Every job since start, and the events subscribers hear.
pub(crate) struct Jobs {
    jobs: Mutex<(u64, BTreeMap<u64, Job>)>,
    finished: Notify,
    events: broadcast::Sender<Value>,
}

impl Jobs {
    pub(crate) fn new() -> Self {
        Self {
            jobs: Mutex::new((0, BTreeMap::new())),
            finished: Notify::new(),
            events: broadcast::channel(256).0,
        }
    }

    /// The `collection_update` params of every job change.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.events.subscribe()
    }

    fn emit(&self, msg: &str, id: u64, job: &Job) {
        let _ = self.events.send(
            json!({"msg": msg, "collection": "core.get_jobs", "id": id, "fields": job.encode(id)}),
        );
    }

    /// Starts a job for a call; its id.
    pub(crate) fn start(&self, method: &str, arguments: Value, message_id: Option<&Value>) -> u64 {
        let job = Job {
            method: method.to_string(),
            arguments,
            message_ids: message_id.cloned().into_iter().collect(),
            state: "RUNNING",
            result: Value::Null,
            error: None,
            started_ms: now_ms(),
            finished_ms: None,
        };
        let id = match self.jobs.lock() {
            Ok(mut jobs) => {
                jobs.0 += 1;
                let id = jobs.0;
                jobs.1.insert(id, job.clone());
                id
            }
            Err(_) => 0,
        };
        self.emit("added", id, &job);
        id
    }

    /// Ends a job with its outcome.
    pub(crate) fn finish(&self, id: u64, outcome: Result<Value, RpcError>) {
        let finished = match self.jobs.lock() {
            Ok(mut jobs) => jobs.1.get_mut(&id).map(|job| {
                match outcome {
                    Ok(result) => {
                        job.state = "SUCCESS";
                        job.result = result;
                    }
                    Err(error) => {
                        job.state = "FAILED";
                        job.error = Some(error);
                    }
                }
                job.finished_ms = Some(now_ms());
                job.clone()
            }),
            Err(_) => None,
        };
        if let Some(job) = finished {
            self.emit("changed", id, &job);
        }
        self.finished.notify_waiters();
    }

    /// `core.get_jobs`.
    pub(crate) fn query(
        &self,
        filters: Option<&Value>,
        options: Option<&Value>,
    ) -> Result<Value, RpcError> {
        let rows = match self.jobs.lock() {
            Ok(jobs) => jobs.1.iter().map(|(id, job)| job.encode(*id)).collect(),
            Err(_) => Vec::new(),
        };
        crate::query::apply(rows, filters, options)
    }

    fn outcome(&self, id: u64) -> Option<Option<Result<Value, RpcError>>> {
        let jobs = self.jobs.lock().ok()?;
        let job = jobs.1.get(&id)?;
        Some(job.finished_ms.map(|_| match &job.error {
            Some(error) => Err(error.clone()),
            None => Ok(job.result.clone()),
        }))
    }

    /// Waits for a job's end: its result, or its error as the caller sees it (a failed
    /// job raises `CallError` with the job's errno).
    pub(crate) async fn wait(&self, id: u64) -> Result<Value, RpcError> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let notified = self.finished.notified();
            match self.outcome(id) {
                None => return Err(RpcError::call(2, format!("Job {id} does not exist"))),
                Some(Some(Ok(result))) => return Ok(result),
                Some(Some(Err(error))) => return Err(as_call_error(error)),
                Some(None) => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(RpcError::call(EFAULT, format!("Job {id} did not finish")));
            }
        }
    }
}

fn as_call_error(error: RpcError) -> RpcError {
    match error {
        RpcError::Call { .. } => error,
        other => {
            let reason = other.reason();
            RpcError::call(
                EFAULT,
                reason
                    .trim_end()
                    .trim_start_matches(&format!("[{}] ", errname(EFAULT)))
                    .to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_runs_from_added_to_success() {
        let jobs = Jobs::new();
        let mut events = jobs.subscribe();
        let id = jobs.start(
            "service.control",
            json!(["START", "nfs", {}]),
            Some(&json!(7)),
        );
        assert_eq!(id, 1);
        let added = events.recv().await.unwrap();
        assert_eq!(added["msg"], "added");
        assert_eq!(added["fields"]["state"], "RUNNING");
        jobs.finish(id, Ok(json!(true)));
        let changed = events.recv().await.unwrap();
        assert_eq!(changed["msg"], "changed");
        assert_eq!(changed["fields"]["state"], "SUCCESS");
        assert_eq!(changed["fields"]["message_ids"], json!([7]));
        assert_eq!(jobs.wait(id).await.unwrap(), json!(true));
        let listed = jobs.query(Some(&json!([["id", "=", id]])), None).unwrap();
        assert_eq!(listed[0]["result"], json!(true));
    }

    #[tokio::test]
    async fn a_failed_job_carries_its_error() {
        let jobs = Jobs::new();
        let id = jobs.start("service.control", json!([]), None);
        jobs.finish(
            id,
            Err(RpcError::call(202, "The nfs service failed to start")),
        );
        let listed = jobs
            .query(Some(&json!([["id", "=", id]])), Some(&json!({"get": true})))
            .unwrap();
        assert_eq!(listed["state"], "FAILED");
        assert_eq!(
            listed["error"],
            "[ESERVICESTARTFAILURE] The nfs service failed to start"
        );
        assert_eq!(listed["exc_info"]["errno"], 202);
        assert!(matches!(
            jobs.wait(id).await,
            Err(RpcError::Call { errno: 202, .. })
        ));
    }
}
