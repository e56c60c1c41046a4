//! JSON-RPC 2.0 as TrueNAS speaks it: positional params, integer ids chosen
//! by us, replies routed by id, `collection_update` notifications for jobs,
//! and the error object turned into a classified [`Error`].

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, FieldError};

/// The JSON-RPC error codes TrueNAS uses (`ws_handler/rpc.py`).
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const TOO_MANY_CALLS: i64 = -32000;
pub(crate) const CALL_ERROR: i64 = -32001;

/// The text of one request. It may hold the API key (login), so callers
/// send it and drop it; it is never logged.
pub(crate) fn request_text(id: u64, method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The `error` member of a reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ErrorObject {
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<ErrorData>,
}

/// `error.data`, present on TrueNAS's own errors (`-32602`, `-32001`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ErrorData {
    #[serde(default)]
    pub error: Option<i64>,
    #[serde(default)]
    pub errname: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub extra: Option<Vec<Value>>,
}

/// What one frame from the server means to the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to our request `id`.
    Reply {
        id: u64,
        outcome: Result<Value, ErrorObject>,
    },
    /// A `core.get_jobs` collection update about job `job_id`.
    JobChanged { job_id: u64 },
    /// Anything else (other collections, `notify_unsubscribed`, errors
    /// without an id such as `-32700`): nobody waits for it.
    Ignored { why: String },
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// Reads one text frame. An unreadable frame is an error: the server is
/// not speaking JSON-RPC and the connection is of no use.
pub(crate) fn parse_incoming(text: &str) -> Result<Incoming, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("not JSON-RPC: {e}"))?;
    if let Some(method) = frame.method {
        return Ok(notification(&method, frame.params.unwrap_or(Value::Null)));
    }
    let Some(id) = frame.id.as_ref().and_then(Value::as_u64) else {
        let why = match &frame.error {
            Some(error) => format!("error without a request id: {}", describe(error)),
            None => "a reply to an id kiln never sends".to_owned(),
        };
        return Ok(Incoming::Ignored { why });
    };
    let outcome = match (frame.error, frame.result) {
        (Some(error), _) => Err(error),
        // `"result": null` is a real answer (e.g. `pool.dataset.delete`).
        (None, result) => Ok(result.unwrap_or(Value::Null)),
    };
    Ok(Incoming::Reply { id, outcome })
}

fn notification(method: &str, params: Value) -> Incoming {
    if method != "collection_update" {
        return Incoming::Ignored {
            why: format!("notification {method}"),
        };
    }
    if params.get("collection").and_then(Value::as_str) != Some("core.get_jobs") {
        return Incoming::Ignored {
            why: "update of another collection".to_owned(),
        };
    }
    // The job id is `params.id`; the docs' example only has `fields.id`.
    let job_id = params
        .get("id")
        .and_then(Value::as_u64)
        .or_else(|| params.pointer("/fields/id").and_then(Value::as_u64));
    match job_id {
        Some(job_id) => Incoming::JobChanged { job_id },
        None => Incoming::Ignored {
            why: "job update without an id".to_owned(),
        },
    }
}

fn describe(error: &ErrorObject) -> String {
    let reason = error.data.as_ref().and_then(|d| d.reason.clone());
    let message = error.message.clone().unwrap_or_default();
    format!("{} {}", error.code, reason.unwrap_or(message))
}

/// The classified error for a reply's error object.
pub(crate) fn classify(
    endpoint: &str,
    api_version: &str,
    method: &str,
    error: ErrorObject,
) -> Error {
    let endpoint = endpoint.to_owned();
    let method = method.to_owned();
    let data = error.data.clone();
    match error.code {
        INVALID_PARAMS => {
            let mut errors: Vec<FieldError> = data
                .as_ref()
                .and_then(|d| d.extra.as_ref())
                .map(|rows| rows.iter().filter_map(field_error).collect())
                .unwrap_or_default();
            if errors.is_empty() {
                errors.push(FieldError {
                    attribute: None,
                    message: data
                        .and_then(|d| d.reason)
                        .or(error.message)
                        .unwrap_or_else(|| "Invalid params".to_owned()),
                    errno: None,
                });
            }
            Error::Validation {
                endpoint,
                method,
                errors,
            }
        }
        CALL_ERROR => {
            let data = data.unwrap_or(ErrorData {
                error: None,
                errname: None,
                reason: None,
                extra: None,
            });
            Error::Call {
                endpoint,
                method,
                errno: data.error,
                errname: data.errname.unwrap_or_else(|| "unknown errno".to_owned()),
                reason: data
                    .reason
                    .or(error.message)
                    .unwrap_or_else(|| "Method call error".to_owned()),
            }
        }
        METHOD_NOT_FOUND => Error::MethodNotFound {
            endpoint,
            method,
            api_version: api_version.to_owned(),
        },
        code => Error::Rpc {
            endpoint,
            method,
            code,
            message: data
                .and_then(|d| d.reason)
                .or(error.message)
                .unwrap_or_default(),
        },
    }
}

/// One `[attribute, message, errno]` row of `data.extra`.
fn field_error(row: &Value) -> Option<FieldError> {
    let row = row.as_array()?;
    let message = row.get(1)?.as_str()?.to_owned();
    Some(FieldError {
        attribute: row.first().and_then(Value::as_str).map(str::to_owned),
        message,
        errno: row.get(2).and_then(Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The envelopes from the middleware docs (see tests/data/README.md).
    const WIRE_EXAMPLES: &str = include_str!("../tests/data/jsonrpc-wire-examples.json");

    fn example(name: &str) -> String {
        let all: Value = serde_json::from_str(WIRE_EXAMPLES).unwrap();
        all[name].to_string()
    }

    #[test]
    fn request_is_positional_json_rpc() {
        let text = request_text(7, "system.info", &json!([]));
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut expected: Value = serde_json::from_str(&example("request_system_info")).unwrap();
        expected["id"] = json!(7);
        assert_eq!(value, expected);
    }

    #[test]
    fn reply_routes_by_id() {
        let incoming = parse_incoming(&example("response_example")).unwrap();
        let Incoming::Reply { id, outcome } = incoming else {
            panic!("{incoming:?}");
        };
        assert_eq!(id, 1);
        assert_eq!(outcome.unwrap()["version"], "TrueNAS-25.04");
    }

    #[test]
    fn job_updates_route_to_job_waiters() {
        for step in ["2_job_added_notification", "3_job_progress_notification"] {
            let all: Value = serde_json::from_str(WIRE_EXAMPLES).unwrap();
            let text = all["job_flow"][step].to_string();
            assert_eq!(
                parse_incoming(&text).unwrap(),
                Incoming::JobChanged { job_id: 101 },
                "{step}"
            );
        }
        let other = parse_incoming(&example("notification_collection_update_example")).unwrap();
        assert!(matches!(other, Incoming::Ignored { .. }), "{other:?}");
    }

    #[test]
    fn string_ids_are_not_ours() {
        let all: Value = serde_json::from_str(WIRE_EXAMPLES).unwrap();
        let text = all["job_flow"]["4_final_result"].to_string();
        assert!(matches!(
            parse_incoming(&text).unwrap(),
            Incoming::Ignored { .. }
        ));
    }

    #[test]
    fn null_result_is_an_answer() {
        let incoming = parse_incoming(r#"{"jsonrpc":"2.0","id":3,"result":null}"#).unwrap();
        assert_eq!(
            incoming,
            Incoming::Reply {
                id: 3,
                outcome: Ok(Value::Null)
            }
        );
    }

    fn reply_error(text: &str) -> ErrorObject {
        match parse_incoming(text).unwrap() {
            Incoming::Reply {
                outcome: Err(error),
                ..
            } => error,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_params_keep_every_attribute() {
        let error = reply_error(
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"Invalid params","data":{
                "error":22,"errname":"EINVAL","reason":"[EINVAL] ...","trace":null,
                "extra":[["iscsi_target_to_extent_create.target","Input should be a valid integer",22],
                         ["iscsi_target_to_extent_create.lunid","Extra inputs are not permitted",22]]}}}"#,
        );
        let text = classify(
            "https://nas.lan",
            "v25.10.5",
            "iscsi.targetextent.create",
            error,
        )
        .to_string();
        assert_eq!(
            text,
            "TrueNAS https://nas.lan: iscsi.targetextent.create: invalid parameters: \
             iscsi_target_to_extent_create.target: Input should be a valid integer; \
             iscsi_target_to_extent_create.lunid: Extra inputs are not permitted"
        );
    }

    #[test]
    fn call_errors_keep_errname_and_reason() {
        let error = reply_error(
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32001,"message":"Method call error","data":{
                "error":207,"errname":"ENOTAUTHENTICATED","reason":"Not authenticated","trace":null,"extra":null}}}"#,
        );
        let classified = classify("https://nas.lan", "v25.10.5", "system.info", error);
        assert!(
            matches!(&classified, Error::Call { errno: Some(207), errname, .. } if errname == "ENOTAUTHENTICATED"),
            "{classified:?}"
        );
        assert_eq!(
            classified.to_string(),
            "TrueNAS https://nas.lan: system.info: Not authenticated (ENOTAUTHENTICATED)"
        );
    }

    #[test]
    fn other_codes() {
        let not_found = reply_error(
            r#"{"jsonrpc":"2.0","id":6,"error":{"code":-32601,"message":"Method does not exist"}}"#,
        );
        assert!(matches!(
            classify("https://nas.lan", "v25.10.5", "service.control", not_found),
            Error::MethodNotFound { .. }
        ));
        let busy = reply_error(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"Maximum number of concurrent calls (20) has exceeded"}}"#,
        );
        assert_eq!(busy.code, TOO_MANY_CALLS);
        let text = classify("https://nas.lan", "v25.10.5", "core.ping", busy).to_string();
        assert!(
            text.contains("-32000") && text.contains("core.ping"),
            "{text}"
        );
    }

    #[test]
    fn errors_without_an_id_are_ignored_not_fatal() {
        let incoming = parse_incoming(
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Invalid JSON"}}"#,
        )
        .unwrap();
        assert!(matches!(incoming, Incoming::Ignored { .. }));
        assert!(parse_incoming("not json").is_err());
    }
}
