//! What each method does, once the session has authenticated the call and the schema has
//! accepted its params. `session.rs` owns the order (auth → params → job or call →
//! result check → log); these modules own the answers.

pub(crate) mod accounts;
mod core;
mod storage;

use std::sync::Arc;

use serde_json::Value;

use crate::rpc::RpcError;
use crate::server::App;
use crate::session::Session;

/// Every method the emulator answers (the others in `methods.json` fail with ENOMETHOD).
pub const EMULATED_METHODS: &[&str] = &[
    "api_key.create",
    "api_key.delete",
    "api_key.get_instance",
    "api_key.my_keys",
    "api_key.query",
    "api_key.update",
    "auth.login_ex",
    "auth.login_with_api_key",
    "auth.logout",
    "auth.me",
    "auth.mechanism_choices",
    "core.get_jobs",
    "core.job_abort",
    "core.job_wait",
    "core.ping",
    "core.set_options",
    "core.subscribe",
    "core.unsubscribe",
    "group.create",
    "group.delete",
    "group.get_instance",
    "group.query",
    "iscsi.auth.create",
    "iscsi.auth.delete",
    "iscsi.auth.get_instance",
    "iscsi.auth.query",
    "iscsi.auth.update",
    "iscsi.extent.create",
    "iscsi.extent.delete",
    "iscsi.extent.disk_choices",
    "iscsi.extent.get_instance",
    "iscsi.extent.query",
    "iscsi.extent.update",
    "iscsi.global.alua_enabled",
    "iscsi.global.client_count",
    "iscsi.global.config",
    "iscsi.global.iser_enabled",
    "iscsi.global.sessions",
    "iscsi.global.update",
    "iscsi.initiator.create",
    "iscsi.initiator.delete",
    "iscsi.initiator.get_instance",
    "iscsi.initiator.query",
    "iscsi.initiator.update",
    "iscsi.portal.create",
    "iscsi.portal.delete",
    "iscsi.portal.get_instance",
    "iscsi.portal.listen_ip_choices",
    "iscsi.portal.query",
    "iscsi.portal.update",
    "iscsi.target.create",
    "iscsi.target.delete",
    "iscsi.target.get_instance",
    "iscsi.target.query",
    "iscsi.target.update",
    "iscsi.target.validate_name",
    "iscsi.targetextent.create",
    "iscsi.targetextent.delete",
    "iscsi.targetextent.get_instance",
    "iscsi.targetextent.query",
    "iscsi.targetextent.update",
    "nfs.bindip_choices",
    "nfs.client_count",
    "nfs.config",
    "nfs.update",
    "pool.dataset.create",
    "pool.dataset.delete",
    "pool.dataset.get_instance",
    "pool.dataset.query",
    "pool.dataset.update",
    "privilege.create",
    "privilege.delete",
    "privilege.get_instance",
    "privilege.query",
    "privilege.update",
    "service.control",
    "service.get_instance",
    "service.query",
    "service.reload",
    "service.restart",
    "service.start",
    "service.started",
    "service.started_or_enabled",
    "service.stop",
    "service.update",
    "sharing.nfs.create",
    "sharing.nfs.delete",
    "sharing.nfs.get_instance",
    "sharing.nfs.query",
    "sharing.nfs.update",
    "system.boot_id",
    "system.host_id",
    "system.info",
    "system.product_type",
    "system.ready",
    "system.state",
    "system.version",
    "system.version_short",
    "user.create",
    "user.delete",
    "user.get_instance",
    "user.query",
];

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
    if let Some(answer) = accounts::call(app, session, method, params) {
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
