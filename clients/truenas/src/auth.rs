//! Logging in with the API key, once per connection.
//!
//! With a username, `auth.login_ex` (`API_KEY_PLAIN`) tells a refused key
//! from an expired or revoked one; without one, or where `login_ex` is
//! missing, `auth.login_with_api_key` answers a bare yes or no. The key is
//! put into the request text only; it is never logged or copied into errors.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::rpc::{RpcConnection, RpcFailure};
use crate::wire::{METHOD_NOT_FOUND, classify};

/// The login's view of the connection: where it is (for errors) and how
/// long one call may take.
pub(crate) struct LoginTarget<'a> {
    pub rpc: &'a RpcConnection,
    pub endpoint: &'a str,
    pub api_version: &'a str,
    pub timeout: std::time::Duration,
}

#[derive(Deserialize)]
struct LoginExReply {
    response_type: String,
}

pub(crate) async fn login(
    target: &LoginTarget<'_>,
    api_key: &SecretString,
    username: Option<&str>,
) -> Result<()> {
    if let Some(username) = username {
        let params = json!([{
            "mechanism": "API_KEY_PLAIN",
            "username": username,
            "api_key": api_key.expose_secret(),
            "login_options": {"user_info": false},
        }]);
        match call(target, "auth.login_ex", &params).await {
            Ok(reply) => return login_ex_outcome(target.endpoint, reply),
            Err(Fallback::MethodMissing) => {
                tracing::debug!("auth.login_ex missing; using auth.login_with_api_key");
            }
            Err(Fallback::Failed(error)) => return Err(error),
        }
    }
    let params = json!([api_key.expose_secret()]);
    match call(target, "auth.login_with_api_key", &params).await {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(Value::Bool(false)) => Err(Error::Auth {
            endpoint: target.endpoint.to_owned(),
            reason: "the API key was refused (wrong, revoked or expired key)".to_owned(),
        }),
        Ok(other) => Err(Error::Decode {
            endpoint: target.endpoint.to_owned(),
            method: "auth.login_with_api_key".to_owned(),
            reason: format!("expected true or false, got {}", kind_of(&other)),
        }),
        Err(Fallback::MethodMissing) => Err(Error::Auth {
            endpoint: target.endpoint.to_owned(),
            reason: "the server offers no API-key login (TrueNAS 25.04 or newer is needed)"
                .to_owned(),
        }),
        Err(Fallback::Failed(error)) => Err(error),
    }
}

fn login_ex_outcome(endpoint: &str, reply: Value) -> Result<()> {
    let reply: LoginExReply = serde_json::from_value(reply).map_err(|e| Error::Decode {
        endpoint: endpoint.to_owned(),
        method: "auth.login_ex".to_owned(),
        reason: e.to_string(),
    })?;
    let reason = match reply.response_type.as_str() {
        "SUCCESS" => return Ok(()),
        "AUTH_ERR" => "the API key or username was refused (AUTH_ERR)",
        "EXPIRED" => {
            "the API key is expired or revoked (EXPIRED) — TrueNAS revokes a key that was \
             ever sent over plain HTTP; create a new one"
        }
        "OTP_REQUIRED" => {
            "the account asks for a one-time password (OTP_REQUIRED); kiln's service account \
             must not use two-factor login"
        }
        "REDIRECT" => "this controller is an HA standby (REDIRECT); use the active one",
        other => {
            return Err(Error::Auth {
                endpoint: endpoint.to_owned(),
                reason: format!("login refused ({other})"),
            });
        }
    };
    Err(Error::Auth {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    })
}

enum Fallback {
    MethodMissing,
    Failed(Error),
}

async fn call(
    target: &LoginTarget<'_>,
    method: &str,
    params: &Value,
) -> std::result::Result<Value, Fallback> {
    let failure = match target.rpc.call(method, params, target.timeout).await {
        Ok(value) => return Ok(value),
        Err(failure) => failure,
    };
    let error = match failure {
        RpcFailure::Remote(error) if error.code == METHOD_NOT_FOUND => {
            return Err(Fallback::MethodMissing);
        }
        RpcFailure::Remote(error) => {
            match classify(target.endpoint, target.api_version, method, error) {
                // A refused login is an auth failure, whatever shape it came in.
                Error::Call { reason, .. } => Error::Auth {
                    endpoint: target.endpoint.to_owned(),
                    reason,
                },
                other => other,
            }
        }
        RpcFailure::TimedOut(after) => Error::Timeout {
            endpoint: target.endpoint.to_owned(),
            method: method.to_owned(),
            after,
            mutating: false,
        },
        RpcFailure::NotSent(detail) | RpcFailure::Lost(detail) => Error::Transport {
            endpoint: target.endpoint.to_owned(),
            step: method.to_owned(),
            detail,
        },
        RpcFailure::TooLarge(bytes) => Error::Config(format!("{method}: request of {bytes} bytes")),
    };
    Err(Fallback::Failed(error))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_ex_outcomes_explain_themselves() {
        assert!(login_ex_outcome("https://nas.lan", json!({"response_type": "SUCCESS"})).is_ok());
        for (kind, needle) in [
            ("AUTH_ERR", "refused"),
            ("EXPIRED", "revoked"),
            ("OTP_REQUIRED", "one-time password"),
            ("REDIRECT", "standby"),
            ("DENIED", "DENIED"),
        ] {
            let error =
                login_ex_outcome("https://nas.lan", json!({"response_type": kind})).unwrap_err();
            let text = error.to_string();
            assert!(matches!(error, Error::Auth { .. }), "{text}");
            assert!(
                text.contains(needle) && text.contains("https://nas.lan"),
                "{text}"
            );
        }
    }
}
