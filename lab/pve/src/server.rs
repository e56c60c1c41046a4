//! The request pipeline: path lookup (501) → authentication (401) → schema validation
//! (400) → faults → PVE handler; every request is logged. `kiln_lab_core::https` serves it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Request, header};
use axum::response::Response;
use kiln_lab_core::{LoggedRequest, MASK, RequestLog, https, mask_params};

use crate::api::auth::{Auth, Caller};
use crate::api::params::{self, RequestParams};
use crate::api::reply::{self, ApiError};
use crate::faults::Faults;
use crate::pve::{self, Cluster, Ctx};
use crate::schema::{ApiSchema, validate_params};

pub(crate) struct App {
    pub(crate) schema: ApiSchema,
    pub(crate) auth: Auth,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    /// PVE answers a failed login after 3 s; the lab's default is shorter for tests.
    pub(crate) auth_failure_delay: Duration,
}

/// The lab's one route: every request goes to the pipeline.
pub(crate) fn router(app: Arc<App>) -> Router {
    // Uploads (cloud images) are streamed through the digests, so no body limit here; form
    // bodies have their own limit in `params`.
    Router::new()
        .fallback(fallback)
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// Every request goes to one handler: the schema, not a route table, decides what exists.
async fn fallback(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    handle(&app, req).await
}

async fn handle(app: &App, req: Request<Body>) -> Response {
    let started = Instant::now();
    let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let auth = mask_auth(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .any(|c| c.to_str().is_ok_and(|c| c.contains("PVEAuthCookie"))),
    );
    let (response, params) = process(app, req).await;
    app.log.record(LoggedRequest {
        time,
        method: method.clone(),
        path,
        params: mask_params(&params),
        auth,
        status: if https::is_dropped(&response) {
            0
        } else {
            response.status().as_u16()
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        mutating: method != "GET",
    });
    response
}

/// Masks the secret part of an `Authorization` header or notes a ticket cookie.
fn mask_auth(authorization: Option<&str>, has_ticket_cookie: bool) -> Option<String> {
    if let Some(value) = authorization {
        if let Some(rest) = value
            .strip_prefix("PVEAPIToken=")
            .or_else(|| value.strip_prefix("PVEAPIToken "))
        {
            let id = rest.rsplit_once('=').map(|(id, _)| id).unwrap_or_default();
            return Some(format!("PVEAPIToken={id}={MASK}"));
        }
        if value.starts_with("PVEAuthCookie") {
            return Some(format!("PVEAuthCookie={MASK}"));
        }
        return Some(MASK.to_string());
    }
    has_ticket_cookie.then(|| format!("PVEAuthCookie={MASK}"))
}

fn not_implemented(method: &Method, path: &str) -> Response {
    ApiError::NotImplemented(format!("Method '{method} {path}' not implemented")).into_response()
}

async fn process(app: &App, req: Request<Body>) -> (Response, BTreeMap<String, String>) {
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let Some(path) = full_path.strip_prefix("/api2/json") else {
        return (not_implemented(&method, &full_path), BTreeMap::new());
    };
    let Some(found) = app.schema.lookup(path) else {
        return (not_implemented(&method, path), BTreeMap::new());
    };
    let Some(method_schema) = found.method(method.as_str()) else {
        return (not_implemented(&method, path), BTreeMap::new());
    };
    let template = found.template.to_string();
    let headers = req.headers().clone();
    let spool = app.cluster.volumes.spool_dir();
    let RequestParams { values, upload } = match params::extract(req, spool).await {
        Ok(p) => p,
        Err(e) => return (e.into_response(), BTreeMap::new()),
    };
    let is_ticket = method == Method::POST && template == "/access/ticket";
    let caller = if is_ticket {
        Caller {
            user: String::new(),
            token: None,
        }
    } else {
        match app
            .auth
            .authenticate(&headers, &method, template.ends_with("/upload"))
        {
            Ok(caller) => caller,
            Err(e) => {
                tokio::time::sleep(app.auth_failure_delay).await;
                return (e.into_response(), values);
            }
        }
    };
    let mut all = values.clone();
    all.extend(found.path_params.clone());
    if let Err(errors) = validate_params(&all, &method_schema.parameters) {
        return (ApiError::Param(errors).into_response(), values);
    }
    let Some(operation) = pve::operation(&template, method.as_str()) else {
        let message = format!("Method '{method} {path}' not implemented by kiln-lab");
        return (ApiError::NotImplemented(message).into_response(), values);
    };
    let plan = app.faults.plan(operation);
    if plan.drop_connection {
        return (https::dropped(), values);
    }
    tokio::time::sleep(plan.latency).await;
    let vmid: Option<u32> = all.get("vmid").and_then(|v| v.parse().ok());
    if operation == "agent" && vmid.is_some_and(|vmid| app.faults.never_boots(vmid)) {
        let response = ApiError::fail("QEMU guest agent is not running").into_response();
        return (response, values);
    }
    if let Some(kind) = plan.error {
        let response = ApiError::fail(kind.message(vmid, "local-lvm")).into_response();
        return (response, values);
    }
    let result = if is_ticket {
        app.auth
            .create_ticket(
                all.get("username").map_or("", String::as_str),
                all.get("password").map_or("", String::as_str),
                all.get("realm").map(String::as_str),
            )
            .map(pve::Out::from)
    } else {
        let ctx = Ctx {
            cluster: &app.cluster,
            params: &all,
            upload: upload.as_ref(),
            caller: &caller,
            plan: &plan,
            schema: &app.schema,
        };
        pve::dispatch(&ctx, &template, method.as_str()).await
    };
    let response = match result {
        Ok(out) => reply::ok(out.data, out.total),
        Err(e) => e.into_response(),
    };
    (response, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_keeps_the_token_id_only() {
        assert_eq!(
            mask_auth(Some("PVEAPIToken=kiln@pve!kiln=abc-def"), false).as_deref(),
            Some("PVEAPIToken=kiln@pve!kiln=***")
        );
        assert_eq!(mask_auth(None, true).as_deref(), Some("PVEAuthCookie=***"));
        assert_eq!(mask_auth(None, false), None);
    }
}
