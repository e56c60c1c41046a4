//! JSON-RPC 2.0 as the middleware frames it (`api/base/server/ws_handler/rpc.py`): the
//! request checks of `validate_message`, and error objects shaped by `send_error` /
//! `format_truenas_error`.

use serde_json::{Value, json};

pub(crate) const INVALID_JSON: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const TOO_MANY_CONCURRENT_CALLS: i64 = -32000;
pub(crate) const CALL_ERROR: i64 = -32001;

pub(crate) const ENOENT: i64 = 2;
pub(crate) const EFAULT: i64 = 14;
pub(crate) const EBUSY: i64 = 16;
pub(crate) const EINVAL: i64 = 22;
pub(crate) const ENOTEMPTY: i64 = 39;
pub(crate) const ESERVICESTARTFAILURE: i64 = 202;
pub(crate) const ENOTAUTHENTICATED: i64 = 207;

/// `errno.errorcode` plus the middleware's own errnos (`ErrnoMixin`).
pub(crate) fn errname(errno: i64) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        39 => "ENOTEMPTY",
        95 => "EOPNOTSUPP",
        201 => "ENOMETHOD",
        202 => "ESERVICESTARTFAILURE",
        205 => "EDATASETISLOCKED",
        207 => "ENOTAUTHENTICATED",
        _ => return errno.to_string(),
    };
    name.to_string()
}

/// One `ValidationError`: attribute (null for e.g. `InstanceNotFound`), message, errno.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub attribute: Option<String>,
    pub message: String,
    pub errno: i64,
}

impl FieldError {
    pub(crate) fn new(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            attribute: Some(attribute.into()),
            message: message.into(),
            errno: EINVAL,
        }
    }

    pub(crate) fn with_errno(mut self, errno: i64) -> Self {
        self.errno = errno;
        self
    }
}

/// How a call fails.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RpcError {
    /// `ValidationErrors` → -32602 "Invalid params", `data.extra` = the list.
    Validation(Vec<FieldError>),
    /// `CallError` → -32001 "Method call error".
    Call {
        errno: i64,
        message: String,
        extra: Option<Value>,
    },
    /// Any other exception (`MatchNotFound`, `ValueError`): -32001 with EINVAL and the
    /// exception's text as the reason, without an errname prefix.
    Exception(String),
    MethodNotFound,
    TooManyCalls,
}

impl RpcError {
    pub(crate) fn call(errno: i64, message: impl Into<String>) -> Self {
        Self::Call {
            errno,
            message: message.into(),
            extra: None,
        }
    }

    pub(crate) fn field(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(attribute, message)])
    }

    /// `InstanceNotFound`: a `ValidationError` with no attribute and ENOENT.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            attribute: None,
            message: message.into(),
            errno: ENOENT,
        }])
    }

    pub(crate) fn code(&self) -> i64 {
        match self {
            Self::Validation(_) => INVALID_PARAMS,
            Self::Call { .. } | Self::Exception(_) => CALL_ERROR,
            Self::MethodNotFound => METHOD_NOT_FOUND,
            Self::TooManyCalls => TOO_MANY_CONCURRENT_CALLS,
        }
    }

    /// `str(CallError)` / `str(ValidationErrors)`: what `data.reason` carries.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Validation(errors) => errors
                .iter()
                .map(|e| {
                    let attribute = e.attribute.as_deref().unwrap_or("None");
                    format!("[{}] {attribute}: {}\n", errname(e.errno), e.message)
                })
                .collect(),
            Self::Call { errno, message, .. } => format!("[{}] {message}", errname(*errno)),
            Self::Exception(message) => message.clone(),
            Self::MethodNotFound => "Method does not exist".to_string(),
            Self::TooManyCalls => "Maximum number of concurrent calls (20) has exceeded".into(),
        }
    }

    /// The `error` member of the response.
    pub(crate) fn to_error_object(&self) -> Value {
        match self {
            Self::MethodNotFound => {
                json!({"code": METHOD_NOT_FOUND, "message": "Method does not exist"})
            }
            Self::TooManyCalls => json!({
                "code": TOO_MANY_CONCURRENT_CALLS,
                "message": "Maximum number of concurrent calls (20) has exceeded",
            }),
            Self::Validation(errors) => {
                let extra: Vec<Value> = errors
                    .iter()
                    .map(|e| json!([e.attribute, e.message, e.errno]))
                    .collect();
                json!({
                    "code": INVALID_PARAMS,
                    "message": "Invalid params",
                    "data": truenas_data(EINVAL, self.reason(), "ValidationErrors", Some(Value::Array(extra))),
                })
            }
            Self::Call { errno, extra, .. } => json!({
                "code": CALL_ERROR,
                "message": "Method call error",
                "data": truenas_data(*errno, self.reason(), "CallError", extra.clone()),
            }),
            Self::Exception(_) => json!({
                "code": CALL_ERROR,
                "message": "Method call error",
                "data": truenas_data(EINVAL, self.reason(), "Exception", None),
            }),
        }
    }
}

/// `format_truenas_error`: the `data` member. The trace names the exception class; an
/// emulator has no Python frames to show.
fn truenas_data(errno: i64, reason: String, class: &str, extra: Option<Value>) -> Value {
    json!({
        "error": errno,
        "errname": errname(errno),
        "reason": reason,
        "trace": {
            "class": class,
            "frames": [],
            "formatted": format!("{class}: {reason}"),
            "repr": format!("{class}({reason:?})"),
        },
        "extra": extra,
    })
}

/// A successful response.
pub(crate) fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "result": result, "id": id})
}

/// An error response.
pub(crate) fn error(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "error": error.to_error_object(), "id": id})
}

/// An error without TrueNAS data (-32700, -32600).
pub(crate) fn plain_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

/// A server notification (`collection_update`, `notify_unsubscribed`).
pub(crate) fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// A request that passed `validate_message`.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `None` for a notification (no `id` member): it gets no reply.
    pub id: Option<Value>,
    pub method: String,
    pub params: Vec<Value>,
}

/// What to do with one incoming text frame.
#[derive(Debug)]
pub(crate) enum Incoming {
    Call(Request),
    /// Answer this and carry on (invalid JSON, invalid request with an id).
    Reply(Value),
    /// Invalid, and without an id: nothing is sent.
    Ignore,
}

/// `validate_message`, in the order the middleware checks.
pub(crate) fn parse(text: &str) -> Incoming {
    let message: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Incoming::Reply(plain_error(&Value::Null, INVALID_JSON, &e.to_string())),
    };
    // `parse_message` (`utils/limits.py`): only an object is a message; its ValueError is
    // answered as invalid JSON.
    let message = match message {
        Value::Object(message) => message,
        Value::Array(_) => {
            return Incoming::Reply(plain_error(
                &Value::Null,
                INVALID_JSON,
                "Batch messages are not supported at this time",
            ));
        }
        _ => {
            return Incoming::Reply(plain_error(
                &Value::Null,
                INVALID_JSON,
                "Invalid Message Format",
            ));
        }
    };
    let id = message.get("id").cloned();
    let invalid = |reason: &str| match &id {
        Some(id) => Incoming::Reply(plain_error(id, INVALID_REQUEST, reason)),
        None => Incoming::Ignore,
    };
    match message.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(_) => {
            return invalid("'jsonrpc' member must be of type string and must be exactly '2.0'");
        }
        None => return invalid("Missing 'jsonrpc' member"),
    }
    if let Some(id) = &id
        && !(id.is_null() || id.is_string() || id.is_i64() || id.is_u64())
    {
        return invalid("'id' member must be of type null, string or number");
    }
    let method = match message.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return invalid("'method' member must be of type string"),
        None => return invalid("Missing 'method' member"),
    };
    let params = match message.get("params") {
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return invalid("'params' member must be of type array"),
        None => Vec::new(),
    };
    Incoming::Call(Request { id, method, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_error_has_truenas_shape() {
        let e = RpcError::field(
            "iscsi_extent_create.disk",
            "Disk name must start with \"zvol/\"",
        );
        let v = e.to_error_object();
        assert_eq!(v["code"], -32602);
        assert_eq!(v["message"], "Invalid params");
        assert_eq!(v["data"]["error"], 22);
        assert_eq!(v["data"]["errname"], "EINVAL");
        assert_eq!(
            v["data"]["extra"][0],
            json!([
                "iscsi_extent_create.disk",
                "Disk name must start with \"zvol/\"",
                22
            ])
        );
        assert_eq!(
            v["data"]["reason"],
            "[EINVAL] iscsi_extent_create.disk: Disk name must start with \"zvol/\"\n"
        );
    }

    #[test]
    fn call_error_reason_carries_errname() {
        let v = RpcError::call(ENOTAUTHENTICATED, "Not authenticated").to_error_object();
        assert_eq!(v["code"], -32001);
        assert_eq!(v["data"]["error"], 207);
        assert_eq!(v["data"]["errname"], "ENOTAUTHENTICATED");
        assert_eq!(v["data"]["reason"], "[ENOTAUTHENTICATED] Not authenticated");
        assert_eq!(v["data"]["extra"], Value::Null);
    }

    #[test]
    fn requests_are_checked_like_validate_message() {
        assert!(matches!(parse("{"), Incoming::Reply(v) if v["error"]["code"] == -32700));
        assert!(
            matches!(parse("[]"), Incoming::Reply(v) if v["error"]["message"] == "Batch messages are not supported at this time")
        );
        assert!(
            matches!(parse("1"), Incoming::Reply(v) if v["error"]["message"] == "Invalid Message Format")
        );
        assert!(
            matches!(parse(r#"{"jsonrpc":"2.0","method":"core.ping"}"#), Incoming::Call(r) if r.id.is_none() && r.params.is_empty())
        );
        assert!(
            matches!(parse(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#), Incoming::Reply(v) if v["error"]["code"] == -32600)
        );
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"x","params":{}}"#),
            Incoming::Ignore
        ));
        assert!(
            matches!(parse(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#), Incoming::Reply(v) if v["error"]["message"] == "'params' member must be of type array")
        );
    }
}
