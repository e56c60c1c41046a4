//! Running PVE tasks (the work after a delay, an injected error or a cancel first) and the
//! task endpoints: status, log, list, stop. The records themselves are `task::Task`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::state::{State, now_secs};
use super::task::{Task, TaskResult};
use super::{Cluster, Ctx, Out};
use crate::api::auth::Caller;
use crate::api::reply::ApiError;

impl Cluster {
    /// Registers a running task and runs `work` after `duration`. `work` receives the error
    /// a fault plan injects, so that it can undo what it began (a failed clone removes its
    /// VM).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn_task<F, Fut>(
        self: &Arc<Self>,
        state: &mut State,
        node: &str,
        kind: &str,
        id: &str,
        caller: &Caller,
        duration: Duration,
        injected: Option<String>,
        work: F,
    ) -> String
    where
        F: FnOnce(Arc<Cluster>, Option<String>) -> Fut + Send + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let task = Task::new(node, kind, id, caller, state.pid(), now_secs());
        let upid = task.upid.clone();
        state.tasks.insert(upid.clone(), task);
        let cluster = Arc::clone(self);
        let task_upid = upid.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let cancelled = cluster
                .lock()
                .tasks
                .get(&task_upid)
                .is_some_and(|t| t.cancelled);
            let injected = if cancelled {
                Some("interrupted by signal".to_string())
            } else {
                injected
            };
            let result = work(Arc::clone(&cluster), injected).await;
            cluster.finish_task(&task_upid, result);
        });
        upid
    }

    fn finish_task(&self, upid: &str, result: TaskResult) {
        if let Some(task) = self.lock().tasks.get_mut(upid) {
            task.finish(result, now_secs());
        }
    }

    /// Waits up to `limit` for a task to end; its exit status if it did.
    pub(crate) async fn wait_task(&self, upid: &str, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let exit = self.lock().tasks.get(upid).and_then(|t| t.exit.clone());
            if exit.is_some() || tokio::time::Instant::now() >= deadline {
                return exit;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

const UPID_RE: &str = r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):";

fn find_task(ctx: &Ctx<'_>) -> Result<Task, ApiError> {
    let upid = ctx.param("upid");
    if !crate::schema::full_match(UPID_RE, upid) {
        return Err(ApiError::param(
            "upid",
            format!("unable to parse worker upid '{upid}'"),
        ));
    }
    let state = ctx.cluster.lock();
    state
        .tasks
        .get(upid)
        .filter(|t| t.node == ctx.param("node"))
        .cloned()
        .ok_or_else(|| ApiError::param("upid", "no such task"))
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub(crate) fn status(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let task = find_task(ctx)?;
    let mut out = json!({
        "upid": task.upid,
        "node": task.node,
        "pid": task.pid,
        "pstart": task.pstart,
        "starttime": task.starttime,
        "type": task.kind,
        "id": task.id,
        "user": task.user,
        "status": if task.exit.is_some() { "stopped" } else { "running" },
    });
    if let Some(token) = task.tokenid {
        out["tokenid"] = json!(token);
    }
    if let Some(exit) = task.exit {
        out["exitstatus"] = json!(exit);
    }
    Ok(out.into())
}

/// `GET /nodes/{node}/tasks/{upid}/log` with `start` and `limit`; the reply carries `total`.
pub(crate) fn log(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let task = find_task(ctx)?;
    let start: usize = ctx.opt("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = ctx.opt("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let lines: Vec<Value> = task
        .log
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, t)| json!({"n": i + 1, "t": t}))
        .collect();
    Ok(Out {
        data: Value::Array(lines),
        total: Some(task.log.len()),
    })
}

/// `DELETE /nodes/{node}/tasks/{upid}`: stops a running task (its work does not run, and it
/// ends with `interrupted by signal`).
pub(crate) fn stop(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let task = find_task(ctx)?;
    if let Some(task) = ctx.cluster.lock().tasks.get_mut(&task.upid)
        && task.exit.is_none()
    {
        task.cancelled = true;
    }
    Ok(Value::Null.into())
}

/// `GET /nodes/{node}/tasks`: newest first, with `vmid`, `typefilter`, `userfilter`,
/// `errors`, `source` and paging; the reply carries `total`.
pub(crate) fn list(ctx: &Ctx<'_>) -> Result<Out, ApiError> {
    let state = ctx.cluster.lock();
    let source = ctx.opt("source").unwrap_or("archive");
    let errors_only = ctx.flag("errors").unwrap_or(false);
    let mut tasks: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.node == ctx.node())
        .filter(|t| match source {
            "active" => t.exit.is_none(),
            "all" => true,
            _ => t.exit.is_some(),
        })
        .filter(|t| ctx.opt("vmid").is_none_or(|v| t.id == v))
        .filter(|t| ctx.opt("typefilter").is_none_or(|f| t.kind.contains(f)))
        .filter(|t| ctx.opt("userfilter").is_none_or(|f| t.user.contains(f)))
        .filter(|t| !errors_only || t.failed())
        .collect();
    tasks.sort_by(|a, b| b.starttime.cmp(&a.starttime).then(b.pid.cmp(&a.pid)));
    let total = tasks.len();
    let start: usize = ctx.opt("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = ctx.opt("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let list: Vec<Value> = tasks
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|t| {
            let mut entry = json!({
                "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
                "starttime": t.starttime, "type": t.kind, "id": t.id, "user": t.user,
            });
            if let Some(exit) = &t.exit {
                entry["status"] = json!(exit);
            }
            if let Some(end) = t.endtime {
                entry["endtime"] = json!(end);
            }
            if let Some(token) = &t.tokenid {
                entry["tokenid"] = json!(token);
            }
            entry
        })
        .collect();
    Ok(Out {
        data: Value::Array(list),
        total: Some(total),
    })
}
