//! Task handles and waiting: every mutating call yields a [`TaskHandle`];
//! waiting polls the node named in the UPID until the task stops.

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use backon::Retryable;
use regex::Regex;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::de;
use crate::error::{Endpoint, Error, ErrorClass, Result, Target};
use crate::limits::Permits;
use crate::params::Params;
use crate::upid::Upid;
use crate::wire::{Body, decode, endpoint, seg};

/// What a mutating call returned: a task to wait for, or nothing to wait
/// for (sync calls, `data: null` from older releases or `background_delay`).
#[derive(Debug)]
pub enum TaskHandle {
    Task {
        upid: Upid,
        target: Target,
        /// Concurrency slots held until the task has been waited for.
        permits: Permits,
    },
    Done,
}

impl TaskHandle {
    pub fn upid(&self) -> Option<&Upid> {
        match self {
            TaskHandle::Task { upid, .. } => Some(upid),
            TaskHandle::Done => None,
        }
    }

    /// Reads a mutating call's `data`: a UPID string or null.
    pub(crate) fn from_data(
        data: Value,
        ep: &Endpoint,
        target: &Target,
        permits: Permits,
    ) -> Result<Self> {
        match data {
            Value::Null => Ok(TaskHandle::Done),
            Value::String(s) if s.starts_with("UPID:") => Ok(TaskHandle::Task {
                upid: s.parse()?,
                target: target.clone(),
                permits,
            }),
            other => Err(Error::Decode {
                endpoint: ep.clone(),
                target: target.clone(),
                reason: format!("expected a task UPID or null, got {other}"),
            }),
        }
    }
}

/// How a waited-for task ended (always a success: failures are errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    pub upid: Option<Upid>,
    /// `OK`, `WARNINGS: N`, or `None` for calls that had no task.
    pub exitstatus: Option<String>,
    pub warnings: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaskStatus {
    pub status: String,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub exitstatus: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub upid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub node: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "de::opt_string")]
    pub task_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub tokenid: Option<String>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pstart: Option<u64>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub starttime: Option<u64>,
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskLogLine {
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub n: Option<u64>,
    #[serde(default)]
    pub t: String,
}

static WARNINGS_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^WARNINGS: (\d+)$").ok());

/// `Some(warnings)` when the exit status means success (`UPID.pm:status_is_error`).
pub fn exit_success(exitstatus: &str) -> Option<u32> {
    if exitstatus == "OK" {
        return Some(0);
    }
    let caps = WARNINGS_RE.as_ref()?.captures(exitstatus)?;
    caps.get(1)?.as_str().parse().ok()
}

/// How many task log lines a failure carries.
const LOG_TAIL: usize = 12;

fn task_path(upid: &Upid, tail: &str) -> String {
    format!(
        "/nodes/{}/tasks/{}/{tail}",
        seg(&upid.node),
        seg(upid.as_str())
    )
}

impl ProxmoxClient {
    /// `GET /nodes/{node}/tasks/{upid}/status`, asked of the UPID's node.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        self.get(
            &task_path(upid, "status"),
            Params::new(),
            &Target::node(&upid.node),
        )
        .await
    }

    /// `GET /nodes/{node}/tasks/{upid}/log`.
    pub async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<Vec<TaskLogLine>> {
        let params = Params::new().set("start", start).set("limit", limit);
        self.get(&task_path(upid, "log"), params, &Target::node(&upid.node))
            .await
    }

    /// The last lines of a task log (best effort: used to explain failures).
    pub async fn task_log_tail(&self, upid: &Upid, lines: usize) -> Vec<String> {
        match self.task_log(upid, 0, 100_000).await {
            Ok(log) => {
                let texts: Vec<String> = log.into_iter().map(|l| l.t).collect();
                let skip = texts.len().saturating_sub(lines);
                texts.into_iter().skip(skip).collect()
            }
            Err(e) => vec![format!("(task log unavailable: {e})")],
        }
    }

    /// Waits with the configured task timeout.
    pub async fn wait(&self, handle: TaskHandle) -> Result<TaskOutcome> {
        self.wait_for(handle, self.inner.config.task_timeout).await
    }

    /// Polls the task on its own node with growing pauses until it stops or
    /// `timeout` passes. Success is `OK` or `WARNINGS: N`; anything else is
    /// [`Error::TaskFailed`] with the log's last lines.
    pub async fn wait_for(&self, handle: TaskHandle, timeout: Duration) -> Result<TaskOutcome> {
        let (upid, target, _permits) = match handle {
            TaskHandle::Done => {
                return Ok(TaskOutcome {
                    upid: None,
                    exitstatus: None,
                    warnings: 0,
                });
            }
            TaskHandle::Task {
                upid,
                target,
                permits,
            } => (upid, target, permits),
        };
        let started = Instant::now();
        let poll_max = self.inner.config.task_poll_max;
        // No task has ended the moment it was created, so the first poll
        // waits too. Short tasks (config writes, starts) end within a
        // fraction of a second, so the first pauses are short; they are a
        // quarter of the longest at most, so a fast-polling client (the
        // bench's scaled-down lab) is not left far behind its short tasks.
        let mut pause = Duration::from_millis(100).min(poll_max / 4);
        let path = task_path(&upid, "status");
        let ep = endpoint(&Method::GET, &path);
        let poll_target = Target::node(&upid.node);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(poll_max);
            let body = Body::Params(Params::new());
            match self
                .call_once(Method::GET, &path, &body, &poll_target)
                .await
            {
                Ok(data) => {
                    let status: TaskStatus = decode(data, &ep, &target)?;
                    if !status.is_running() {
                        let exit = status
                            .exitstatus
                            .unwrap_or_else(|| "unexpected status".to_owned());
                        if let Some(warnings) = exit_success(&exit) {
                            return Ok(TaskOutcome {
                                upid: Some(upid),
                                exitstatus: Some(exit),
                                warnings,
                            });
                        }
                        let log_tail = self.task_log_tail(&upid, LOG_TAIL).await;
                        return Err(Error::TaskFailed {
                            upid: Box::new(upid),
                            target,
                            exitstatus: exit,
                            log_tail,
                        });
                    }
                }
                Err(e)
                    if is_no_such_task(&e)
                        && started.elapsed() < self.inner.config.task_not_found_grace => {}
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "task poll failed, polling again");
                }
                Err(e) => return Err(e),
            }
            if started.elapsed() >= timeout {
                return Err(Error::TaskTimeout {
                    upid: Box::new(upid),
                    target,
                    after: timeout,
                });
            }
        }
    }

    /// Dispatches and waits, re-dispatching when the *task* failed on a
    /// transient lock (`can't lock file … got timeout`). Dispatch errors are
    /// already retried inside each call, so they are not retried again here.
    pub async fn run<F, Fut>(&self, dispatch: F) -> Result<TaskOutcome>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<TaskHandle>>,
    {
        (|| async { self.wait(dispatch().await?).await })
            .retry(self.inner.config.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Error::TaskFailed { .. }) && e.class() == ErrorClass::Retryable)
            .notify(|e, after| tracing::debug!(error = %e, ?after, "task failed transiently, dispatching again"))
            .await
    }
}

fn is_no_such_task(e: &Error) -> bool {
    matches!(e, Error::Api { status: 400, message, errors, .. }
        if message.contains("no such task") || errors.values().any(|v| v.contains("no such task")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_statuses() {
        assert_eq!(exit_success("OK"), Some(0));
        assert_eq!(exit_success("WARNINGS: 3"), Some(3));
        assert_eq!(exit_success("WARNINGS: x"), None);
        assert_eq!(exit_success("interrupted by signal"), None);
        assert_eq!(exit_success("unexpected status"), None);
        assert_eq!(exit_success("ok"), None);
    }

    #[test]
    fn handle_from_data() {
        let ep = Endpoint {
            method: "POST",
            path: "/x".into(),
        };
        let t = Target::default();
        assert!(matches!(
            TaskHandle::from_data(Value::Null, &ep, &t, Permits::none()),
            Ok(TaskHandle::Done)
        ));
        let h = TaskHandle::from_data(
            Value::String("UPID:pve2:000FF1FD:10F9374C:630D702C:resize:100:root@pam:".into()),
            &ep,
            &t,
            Permits::none(),
        )
        .unwrap();
        assert_eq!(h.upid().map(|u| u.node.as_str()), Some("pve2"));
        assert!(TaskHandle::from_data(Value::Bool(true), &ep, &t, Permits::none()).is_err());
        assert!(
            TaskHandle::from_data(Value::String("UPID:bad".into()), &ep, &t, Permits::none())
                .is_err()
        );
    }
}
