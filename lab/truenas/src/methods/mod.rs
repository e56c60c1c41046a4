//! What each method does, once the session has authenticated the call and the schema has
//! accepted its params. `session.rs` owns the order (auth → params → job or call →
//! result check → log); these modules own the answers.

mod core;
mod storage;

use std::sync::Arc;

use serde_json::Value;

use crate::rpc::RpcError;
use crate::server::App;
use crate::session::Session;

/// errno 201: the schema names the method, the emulator does not answer it.
const ENOMETHOD: i64 = 201;

/// Runs a (non-job) method.
pub(crate) async fn call(
    app: &Arc<App>,
    session: &Session,
    method: &str,
    params: &[Value],
) -> Result<Value, RpcError> {
    if let Some(answer) = core::call(app, session, method, params).await {
        return answer;
    }
    if let Some(answer) = storage::call(app, method, params) {
        return answer;
    }
    Err(not_emulated(method))
}

/// Runs the body of a job method (`service.control`, `core.job_wait`); None if the
/// emulator has no body for it.
pub(crate) async fn job(
    app: &Arc<App>,
    method: &str,
    params: &[Value],
) -> Option<Result<Value, RpcError>> {
    match method {
        "core.job_wait" => {
            let id = params.first().and_then(Value::as_u64).unwrap_or_default();
            Some(app.jobs.wait(id).await)
        }
        "service.control" => Some(storage::service_control(app, params)),
        _ => None,
    }
}

/// Whether `job` has a body here (checked before a job is started for it).
pub(crate) fn has_job(method: &str) -> bool {
    matches!(method, "core.job_wait" | "service.control")
}

pub(crate) fn not_emulated(method: &str) -> RpcError {
    RpcError::call(
        ENOMETHOD,
        format!("Method {method} is not emulated by kiln-lab-truenas"),
    )
}

/// Positional argument `i`.
fn arg(params: &[Value], i: usize) -> Option<&Value> {
    params.get(i)
}

/// Positional argument `i` as an id (the schema has made sure it is an integer).
fn id_arg(params: &[Value], i: usize) -> u64 {
    arg(params, i).and_then(Value::as_u64).unwrap_or_default()
}

fn str_arg(params: &[Value], i: usize) -> &str {
    arg(params, i).and_then(Value::as_str).unwrap_or_default()
}

fn bool_arg(params: &[Value], i: usize) -> bool {
    arg(params, i).and_then(Value::as_bool).unwrap_or(false)
}
