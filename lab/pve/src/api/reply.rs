//! Replies shaped like pve-http-server's JSON formatter: `{"data": ...}` on success; on
//! failure the reason phrase carries the message and the body has `data: null`,
//! `message` and, for parameter errors, `errors`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::schema::ParamErrors;

/// A request that did not succeed, in PVE's categories.
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    /// 400 `Parameter verification failed.` with one message per parameter.
    Param(ParamErrors),
    /// A `die` in a PVE handler: usually 500 with the message as reason phrase.
    Fail { status: u16, message: String },
    /// 501: the path or method is not served.
    NotImplemented(String),
    /// 401: no or bad credentials.
    Unauthorized(String),
}

impl ApiError {
    pub(crate) fn fail(message: impl Into<String>) -> Self {
        Self::Fail {
            status: 500,
            message: message.into(),
        }
    }

    pub(crate) fn param(key: &str, message: impl Into<String>) -> Self {
        let mut errors = ParamErrors::new();
        errors.insert(key.to_string(), message.into());
        Self::Param(errors)
    }

    /// The text PVE would show for this error (task logs reuse it).
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Param(errors) => errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            Self::Fail { message, .. }
            | Self::NotImplemented(message)
            | Self::Unauthorized(message) => message.clone(),
        }
    }

    /// The reply PVE would send.
    pub(crate) fn into_response(self) -> Response {
        match self {
            Self::Param(errors) => {
                let message = "Parameter verification failed.";
                let body =
                    json!({"data": null, "errors": errors, "message": format!("{message}\n")});
                build(StatusCode::BAD_REQUEST, message, &body)
            }
            Self::Fail { status, message } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                message_reply(status, &message)
            }
            Self::NotImplemented(message) => message_reply(StatusCode::NOT_IMPLEMENTED, &message),
            Self::Unauthorized(message) => message_reply(StatusCode::UNAUTHORIZED, &message),
        }
    }
}

fn message_reply(status: StatusCode, message: &str) -> Response {
    let message = message.trim_end_matches('\n');
    let body = json!({"data": null, "message": format!("{message}\n")});
    build(status, message, &body)
}

/// A successful reply: `{"data": value}`, plus `total` for lists that carry it.
pub(crate) fn ok(data: Value, total: Option<usize>) -> Response {
    let mut body = json!({ "data": data });
    if let Some(total) = total {
        body["total"] = json!(total);
    }
    build(StatusCode::OK, "OK", &body)
}

fn build(status: StatusCode, reason: &str, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    // PVE puts the error text in the reason phrase; clients (proxmoxer, bpg) read it first.
    // A reason phrase is one line of visible ASCII, so the rest is cut.
    let line: String = reason
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(line.into_bytes()) {
        response.extensions_mut().insert(phrase);
    }
    response
}
