//! `core.*`, `auth.*` and `system.*`: the session's own business and the system's identity.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{arg, str_arg};
use crate::auth::{LoginOutcome, login_ex_response};
use crate::rpc::RpcError;
use crate::server::App;
use crate::session::Session;

/// The release this emulator plays.
pub(crate) const VERSION: &str = "25.10.5";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The answer of a core/auth/system method; None if `method` is not one of them.
pub(super) async fn call(
    app: &Arc<App>,
    session: &Session,
    method: &str,
    params: &[Value],
) -> Option<Result<Value, RpcError>> {
    let answer = match method {
        "core.ping" => Ok(json!("pong")),
        "core.set_options" => Ok(session.set_options(arg(params, 0).unwrap_or(&json!({})))),
        "core.subscribe" => Ok(json!(session.subscribe(str_arg(params, 0)))),
        "core.unsubscribe" => {
            session.unsubscribe(str_arg(params, 0));
            Ok(Value::Null)
        }
        "core.get_jobs" => app.jobs.query(arg(params, 0), arg(params, 1)),
        "core.job_abort" => Ok(Value::Null),
        "auth.login_with_api_key" => {
            let key = str_arg(params, 0);
            if !super::accounts::knows_key_id(app, key) {
                // `auth.py`: a key whose id names no key waits 1–2 s, then false.
                let wait = rand::Rng::random_range(&mut rand::rng(), 1000..=2000);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                return Some(Ok(json!(false)));
            }
            let (outcome, caller) = super::accounts::login(app, None, key, session.secure);
            if outcome == LoginOutcome::Success {
                session.set_caller(caller);
                session.set_authenticated();
            }
            Ok(json!(outcome == LoginOutcome::Success))
        }
        "auth.login_ex" => Ok(login_ex(app, session, params)),
        "auth.logout" => {
            session.set_unauthenticated();
            Ok(json!(true))
        }
        "auth.me" => super::accounts::me(app, session),
        "auth.mechanism_choices" => Ok(json!([
            "API_KEY_PLAIN",
            "PASSWORD_PLAIN",
            "TOKEN_PLAIN",
            "OTP_TOKEN"
        ])),
        "system.version" => Ok(json!(format!("TrueNAS-{VERSION}"))),
        "system.version_short" => Ok(json!(VERSION)),
        "system.product_type" => Ok(json!("COMMUNITY_EDITION")),
        "system.ready" => Ok(json!(true)),
        "system.state" => Ok(json!("READY")),
        "system.boot_id" => Ok(json!(session.boot_id())),
        "system.host_id" => Ok(json!("6b696c6e2d6c61622d74727565")),
        "system.info" => Ok(system_info()),
        _ => return None,
    };
    Some(answer)
}

fn login_ex(app: &Arc<App>, session: &Session, params: &[Value]) -> Value {
    let data = arg(params, 0).cloned().unwrap_or_default();
    let with_user_info = data
        .pointer("/login_options/user_info")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let (outcome, caller) = match data.get("mechanism").and_then(Value::as_str) {
        Some("API_KEY_PLAIN") => super::accounts::login(
            app,
            data.get("username").and_then(Value::as_str),
            data.get("api_key")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            session.secure,
        ),
        // The emulator has no passwords, tokens or OTP secrets: those logins fail.
        _ => (LoginOutcome::AuthErr, None),
    };
    if outcome == LoginOutcome::Success {
        session.set_caller(caller);
        session.set_authenticated();
    }
    let mut response = login_ex_response(outcome, with_user_info);
    // A user key's session is that user: its `user_info` is `auth.me`'s.
    if with_user_info
        && matches!(caller, Some(super::accounts::Caller::User(_)))
        && let Ok(info) = super::accounts::me(app, session)
    {
        response["user_info"] = info;
    }
    response
}

fn system_info() -> Value {
    let now = now_ms();
    let boot = now.saturating_sub(3_600_000);
    json!({
        "version": VERSION,
        "buildtime": {"$date": 1_760_000_000_000u64},
        "hostname": "truenas",
        "physmem": 8u64 << 30,
        "model": "kiln-lab virtual CPU",
        "cores": 2,
        "physical_cores": 2,
        "loadavg": [0.0, 0.0, 0.0],
        "uptime": "1:00:00",
        "uptime_seconds": 3600.0,
        "system_serial": null,
        "system_product": null,
        "system_product_version": null,
        "license": null,
        "boottime": {"$date": boot},
        "datetime": {"$date": now},
        "timezone": "UTC",
        "system_manufacturer": null,
        "ecc_memory": false,
    })
}
