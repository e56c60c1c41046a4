//! The call log: one JSON line per JSON-RPC call, secrets masked. Tests read it to assert
//! what a client sent (e.g. "a second apply makes zero mutating calls").

use kiln_lab_core::MASK;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged call (the JSON line's fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedCall {
    /// RFC 3339 UTC time the call arrived.
    pub time: String,
    pub method: String,
    /// The positional params as sent, secrets replaced by `***`.
    pub params: Value,
    pub ok: bool,
    /// The JSON-RPC error code when `ok` is false (-32602, -32001, …); null for a dropped
    /// connection's call and for successes.
    pub error_code: Option<i64>,
}

impl LoggedCall {
    /// Whether the method changes state on a real TrueNAS (what "read-only" checks count).
    pub fn mutating(&self) -> bool {
        let verb = self.method.rsplit('.').next().unwrap_or_default();
        matches!(
            verb,
            "create" | "update" | "delete" | "control" | "start" | "stop" | "restart" | "reload"
        )
    }
}

/// Object keys whose values never reach the log.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("secret")
        || key.contains("password")
        || key.contains("api_key")
        || key.contains("token")
}

/// Positional params that are secrets by themselves (`auth.login_with_api_key [key]`).
fn secret_positions(method: &str) -> &'static [usize] {
    match method {
        "auth.login_with_api_key" | "auth.login_with_token" => &[0],
        "auth.login" => &[1, 2],
        _ => &[],
    }
}

fn mask_value(value: &Value, secrets: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(MASK.to_string())
                    } else {
                        mask_value(v, secrets)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| mask_value(v, secrets)).collect()),
        // A secret pasted into an innocent field is masked too.
        Value::String(s) if secrets.iter().any(|secret| s.contains(secret)) => {
            Value::String(MASK.to_string())
        }
        other => other.clone(),
    }
}

/// The params of a call with every secret masked; `secrets` are values masked wherever
/// they appear (the API key, CHAP secrets).
pub(crate) fn mask_params(method: &str, params: &Value, secrets: &[&str]) -> Value {
    let positions = secret_positions(method);
    match params {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if positions.contains(&i) {
                        Value::String(MASK.to_string())
                    } else {
                        mask_value(v, secrets)
                    }
                })
                .collect(),
        ),
        other => mask_value(other, secrets),
    }
}

/// RFC 3339 UTC, milliseconds.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The emulator's call log (see [`kiln_lab_core::JsonLines`]).
pub(crate) type CallLog = kiln_lab_core::JsonLines<LoggedCall>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_and_chap_secrets_are_masked() {
        let key = "1-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab";
        let masked = mask_params("auth.login_with_api_key", &json!([key]), &[key]);
        assert_eq!(masked, json!([MASK]));
        let masked = mask_params(
            "auth.login_ex",
            &json!([{"mechanism": "API_KEY_PLAIN", "username": "root", "api_key": key}]),
            &[key],
        );
        assert_eq!(masked[0]["api_key"], MASK);
        assert_eq!(masked[0]["username"], "root");
        let masked = mask_params(
            "iscsi.auth.create",
            &json!([{"tag": 1, "user": "u", "secret": "s3cr3ts3cr3t", "peersecret": "x"}]),
            &[],
        );
        assert_eq!(masked[0]["secret"], MASK);
        assert_eq!(masked[0]["peersecret"], MASK);
        assert_eq!(masked[0]["user"], "u");
        let masked = mask_params(
            "pool.dataset.create",
            &json!([{"name": "tank/x", "comments": format!("oops {key}")}]),
            &[key],
        );
        assert_eq!(masked[0]["comments"], MASK);
        assert_eq!(masked[0]["name"], "tank/x");
    }
}
