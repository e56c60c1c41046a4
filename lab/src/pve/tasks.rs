//! PVE tasks: UPIDs (pve-common `UPID.pm`), logs ending in `TASK OK` /
//! `TASK WARNINGS: N` / `TASK ERROR: msg`, and the status and log endpoints.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::state::{State, now_secs};
use super::{Cluster, Ctx, Out};
use crate::api::auth::Caller;
use crate::api::reply::ApiError;

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) upid: String,
    pub(crate) node: String,
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) tokenid: Option<String>,
    pub(crate) pid: u32,
    pub(crate) pstart: u32,
    pub(crate) starttime: u64,
    pub(crate) log: Vec<String>,
    /// `OK`, `WARNINGS: N` or the error text, once the task has ended.
    pub(crate) exit: Option<String>,
    pub(crate) endtime: Option<u64>,
    /// Set by `DELETE /nodes/{node}/tasks/{upid}`: the work is interrupted before it runs.
    pub(crate) cancelled: bool,
}

/// A task's work: the log lines it wrote, or its error text. It receives the error a fault
/// plan injects, so that it can undo what it began (a failed clone removes its VM).
pub(crate) type TaskResult = Result<Vec<String>, String>;

impl Cluster {
    /// Registers a running task and runs `work` after `duration`.
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
        let pid = state.pid();
        let pstart = 0x0100_0000 + pid * 3;
        let starttime = now_secs();
        let upid = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{}:",
            caller.upid_user()
        );
        state.tasks.insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                node: node.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                user: caller.user.clone(),
                tokenid: caller.token.clone(),
                pid,
                pstart,
                starttime,
                log: Vec::new(),
                exit: None,
                endtime: None,
                cancelled: false,
            },
        );
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
        let mut state = self.lock();
        let Some(task) = state.tasks.get_mut(upid) else {
            return;
        };
        task.endtime = Some(now_secs());
        match result {
            Ok(lines) => {
                let warnings = lines.iter().filter(|l| l.starts_with("WARN:")).count();
                task.log.extend(lines);
                if warnings > 0 {
                    task.log.push(format!("TASK WARNINGS: {warnings}"));
                    task.exit = Some(format!("WARNINGS: {warnings}"));
                } else {
                    task.log.push("TASK OK".into());
                    task.exit = Some("OK".into());
                }
            }
            Err(message) => {
                task.log.push(message.clone());
                task.log.push(format!("TASK ERROR: {message}"));
                task.exit = Some(message);
            }
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
        .filter(|t| {
            !errors_only
                || t.exit
                    .as_deref()
                    .is_some_and(|e| e != "OK" && !e.starts_with("WARNINGS"))
        })
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
