//! The wire as TrueNAS speaks it: `/api/versions`, the WebSocket paths, JSON-RPC framing,
//! API-key logins (and what an unauthenticated or insecure client gets), jobs and their
//! events, and the 20-calls-in-flight limit.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Raw, extra, https_get};
use kiln_lab_truenas::{TruenasConfig, TruenasFaults};
use serde_json::{Value, json};

#[tokio::test]
async fn versions_and_websocket_paths() {
    let nas = common::start().await;
    let (status, body) = https_get(&nas, "/api/versions").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!(["v25.10.5"])
    );
    let (status, _) = https_get(&nas, "/api/v2.0/system/info").await;
    assert!(status.contains("404"), "{status}");
    for path in ["/api/current", "/api/v25.10.5"] {
        let mut raw = Raw::connect_path(&nas, path).await;
        assert_eq!(raw.ok("core.ping", json!([])).await, json!("pong"));
    }
    assert!(nas.endpoint.starts_with("https://127.0.0.1:"));
    assert_eq!(nas.fingerprint.len(), 32 * 3 - 1);
    nas.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_as_truenas_refuses_them() {
    let nas = common::start().await;
    let mut raw = Raw::connect(&nas).await;
    let error = raw.err("pool.dataset.query", json!([])).await;
    assert_eq!(error["code"], -32001);
    assert_eq!(error["message"], "Method call error");
    assert_eq!(error["data"]["error"], 207);
    assert_eq!(error["data"]["errname"], "ENOTAUTHENTICATED");
    assert_eq!(
        error["data"]["reason"],
        "[ENOTAUTHENTICATED] Not authenticated"
    );
    // A wrong key: false, and still unauthenticated.
    assert_eq!(
        raw.ok("auth.login_with_api_key", json!(["1-nottherightkey"]))
            .await,
        json!(false)
    );
    assert_eq!(
        raw.err("system.info", json!([])).await["data"]["error"],
        207
    );
    // login_ex with the wrong user or key: AUTH_ERR.
    let answer = raw
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": "root", "api_key": nas.api_key()}]),
        )
        .await;
    assert_eq!(answer, json!({"response_type": "AUTH_ERR"}));
    let answer = raw
        .ok("auth.login_ex", json!([{"mechanism": "API_KEY_PLAIN", "username": nas.username(), "api_key": nas.api_key(), "login_options": {"user_info": false}}]))
        .await;
    assert_eq!(answer["response_type"], "SUCCESS");
    assert_eq!(answer["user_info"], Value::Null);
    assert_eq!(
        raw.ok("auth.me", json!([])).await["pw_name"],
        nas.username()
    );
    assert_eq!(
        raw.ok("system.version", json!([])).await,
        json!("TrueNAS-25.10.5")
    );
    // The key is in no log line.
    let log = serde_json::to_string(&nas.calls()).unwrap();
    assert!(!log.contains(nas.api_key()), "{log}");
    assert!(log.contains("***"));
    nas.shutdown().await;
}

#[tokio::test]
async fn framing_errors_are_shaped_like_the_middleware() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    raw.send_text("{not json").await;
    let answer = raw.recv().await.unwrap();
    assert_eq!(answer["error"]["code"], -32700);
    assert_eq!(answer["id"], Value::Null);
    raw.send_text(r#"{"jsonrpc":"1.0","id":5,"method":"core.ping"}"#)
        .await;
    let answer = raw.answer_to(&json!(5)).await;
    assert_eq!(answer["error"]["code"], -32600);
    raw.send_text(r#"{"jsonrpc":"2.0","id":"s-1","method":"core.ping","params":{}}"#)
        .await;
    let answer = raw.answer_to(&json!("s-1")).await;
    assert_eq!(
        answer["error"],
        json!({"code": -32600, "message": "'params' member must be of type array"})
    );
    let error = raw.err("pool.dataset.frobnicate", json!([])).await;
    assert_eq!(
        error,
        json!({"code": -32601, "message": "Method does not exist"})
    );
    // A notification (no id) gets no answer; the next call still does, with a string id.
    raw.send_text(r#"{"jsonrpc":"2.0","method":"core.ping"}"#)
        .await;
    raw.send_text(r#"{"jsonrpc":"2.0","id":"uuid-like","method":"core.ping"}"#)
        .await;
    assert_eq!(raw.answer_to(&json!("uuid-like")).await["result"], "pong");
    assert!(raw.notifications.is_empty(), "{:?}", raw.notifications);
    nas.shutdown().await;
}

#[tokio::test]
async fn a_plain_listener_on_loopback_is_a_secure_transport() {
    let config = TruenasConfig {
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..TruenasConfig::default()
    };
    let nas = common::start_with(config).await;
    let plain = nas.plain_endpoint.clone().unwrap();
    let url = format!("{}/api/current", plain.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    let login = json!({"jsonrpc": "2.0", "id": 1, "method": "auth.login_with_api_key", "params": [nas.api_key()]});
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        login.to_string(),
    ))
    .await
    .unwrap();
    let answer = ws.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    // utils/origin.py: loopback counts as secure, so the key survives (the revocation of a
    // key used from a remote address over ws:// is unit-tested in auth.rs).
    assert_eq!(answer["result"], json!(true));
    assert!(!nas.key_revoked());
    nas.shutdown().await;
}

#[tokio::test]
async fn job_ids_get_jobs_job_wait_and_collection_updates() {
    let nas = common::start().await;
    let mut raw = Raw::logged_in(&nas).await;
    raw.ok("core.subscribe", json!(["core.get_jobs"])).await;
    let job = raw.ok("service.control", json!(["START", "nfs", {}])).await;
    let id = job.as_u64().expect("legacy jobs answer the job id");
    // The job's events arrive: added, then changed to SUCCESS.
    let mut states = Vec::new();
    for _ in 0..10 {
        if states.last().map(String::as_str) == Some("SUCCESS") {
            break;
        }
        let event = match raw.notifications.pop_front() {
            Some(e) => e,
            None => raw.recv().await.unwrap(),
        };
        assert_eq!(event["method"], "collection_update", "{event}");
        assert_eq!(event["params"]["collection"], "core.get_jobs");
        assert_eq!(event["params"]["id"], id);
        states.push(
            event["params"]["fields"]["state"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(states, ["RUNNING", "SUCCESS"]);
    let listed = raw.ok("core.get_jobs", json!([[["id", "=", id]]])).await;
    assert_eq!(listed[0]["state"], "SUCCESS");
    assert_eq!(listed[0]["result"], true);
    assert_eq!(listed[0]["method"], "service.control");
    assert!(listed[0]["time_finished"]["$date"].is_u64());
    // core.job_wait is itself a job: in legacy mode it answers a job id of its own.
    let waiter = raw.ok("core.job_wait", json!([id])).await.as_u64().unwrap();
    assert_ne!(waiter, id);
    // New-style jobs: the call answers when the job ends, with its result.
    raw.ok("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    assert_eq!(
        raw.ok("service.control", json!(["STOP", "nfs", {}])).await,
        json!(true)
    );
    assert_eq!(raw.ok("core.job_wait", json!([id])).await, json!(true));
    let service = raw
        .ok(
            "service.query",
            json!([[["service", "=", "nfs"]], {"get": true}]),
        )
        .await;
    assert_eq!(service["state"], "STOPPED");
    nas.shutdown().await;
}

#[tokio::test]
async fn a_failing_job_fault_ends_failed_with_its_error() {
    let faults = TruenasFaults {
        failing_job: Some("service.control".into()),
        ..TruenasFaults::default()
    };
    let nas = common::start_with(TruenasConfig {
        faults,
        ..TruenasConfig::default()
    })
    .await;
    let mut raw = Raw::logged_in(&nas).await;
    let id = raw
        .ok("service.control", json!(["START", "iscsitarget", {}]))
        .await;
    let job = raw
        .ok("core.get_jobs", json!([[["id", "=", id]], {"get": true}]))
        .await;
    let job = if job["state"] == "RUNNING" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        raw.ok("core.get_jobs", json!([[["id", "=", id]], {"get": true}]))
            .await
    } else {
        job
    };
    assert_eq!(job["state"], "FAILED", "{job}");
    assert_eq!(job["error"], "[EFAULT] Injected failure of service.control");
    assert_eq!(job["exc_info"]["type"], "CallError");
    raw.ok("core.set_options", json!([{"legacy_jobs": false}]))
        .await;
    let error = raw
        .err("service.control", json!(["START", "iscsitarget", {}]))
        .await;
    assert_eq!(error["code"], -32001);
    assert_eq!(error["data"]["errname"], "EFAULT");
    nas.shutdown().await;
}

#[tokio::test]
async fn more_than_twenty_calls_in_flight_get_minus_32000() {
    let faults = TruenasFaults {
        call_delay: Some(Duration::from_millis(400)),
        ..TruenasFaults::default()
    };
    let nas = common::start_with(TruenasConfig {
        faults,
        ..TruenasConfig::default()
    })
    .await;
    let mut raw = Raw::logged_in(&nas).await;
    for id in 1000..1025 {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "core.ping", "params": []});
        raw.send_text(&request.to_string()).await;
    }
    let mut refused = 0;
    let mut answered = 0;
    for id in 1000..1025 {
        let answer = raw.answer_to(&json!(id)).await;
        if answer["error"]["code"] == -32000 {
            assert_eq!(
                answer["error"]["message"],
                "Maximum number of concurrent calls (20) has exceeded"
            );
            refused += 1;
        } else {
            assert_eq!(answer["result"], "pong");
            answered += 1;
        }
    }
    assert_eq!((answered, refused), (20, 5));
    nas.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_fault_closes_once_and_a_new_connection_works() {
    let faults = TruenasFaults {
        drop_connection_after: Some(3),
        ..TruenasFaults::default()
    };
    let nas = common::start_with(TruenasConfig {
        faults,
        ..TruenasConfig::default()
    })
    .await;
    let mut raw = Raw::logged_in(&nas).await;
    raw.ok("core.ping", json!([])).await;
    raw.ok("core.ping", json!([])).await;
    raw.send_text(&json!({"jsonrpc": "2.0", "id": 99, "method": "core.ping"}).to_string())
        .await;
    assert_eq!(
        raw.recv().await,
        None,
        "the fourth call closes the socket unanswered"
    );
    let mut again = Raw::logged_in(&nas).await;
    for _ in 0..5 {
        again.ok("core.ping", json!([])).await;
    }
    let calls = nas.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| !c.ok && c.error_code.is_none())
            .count(),
        1
    );
    let _ = extra;
    nas.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_calls_are_rate_limited_per_method_and_address() {
    let nas = common::start().await;
    let mut raw = Raw::connect(&nas).await;
    for _ in 0..20 {
        assert_eq!(
            raw.ok("auth.login_with_api_key", json!(["1-wrong"])).await,
            json!(false)
        );
    }
    // core.set_options is exempt; another method has its own count.
    raw.ok("core.set_options", json!([{"legacy_jobs": true}]))
        .await;
    assert_eq!(raw.ok("core.ping", json!([])).await, json!("pong"));
    let started = std::time::Instant::now();
    let error = raw
        .err("auth.login_with_api_key", json!([nas.api_key()]))
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(error["code"], -32001);
    assert_eq!(error["data"]["errname"], "EBUSY");
    assert_eq!(error["data"]["reason"], "[EBUSY] Rate Limit Exceeded");
    // An authenticated session is never limited (a new connection: the limit is per address
    // and method, and login_ex is another method).
    let mut other = Raw::connect(&nas).await;
    let answer = other
        .ok("auth.login_ex", json!([{"mechanism": "API_KEY_PLAIN", "username": nas.username(), "api_key": nas.api_key()}]))
        .await;
    assert_eq!(answer["response_type"], "SUCCESS");
    for _ in 0..25 {
        other.ok("core.ping", json!([])).await;
    }
    nas.shutdown().await;
}

#[tokio::test]
async fn message_size_limits_and_set_options() {
    let nas = common::start().await;
    let mut raw = Raw::connect(&nas).await;
    assert_eq!(
        raw.ok("core.set_options", json!([{"legacy_jobs": false}]))
            .await,
        json!({"legacy_jobs": false, "private_methods": false, "py_exceptions": false})
    );
    raw.send_text("[]").await;
    assert_eq!(
        raw.recv().await.unwrap()["error"],
        json!({"code": -32700, "message": "Batch messages are not supported at this time"})
    );
    // Over 8 KiB before login: the socket is closed.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": [], "pad": "x".repeat(9000)});
    raw.send_text(&big.to_string()).await;
    assert_eq!(raw.recv().await, None);
    // After login up to 64 KiB is fine (the params are then refused by the schema).
    let mut raw = Raw::logged_in(&nas).await;
    let error = raw.err("core.ping", json!(["x".repeat(20_000)])).await;
    assert_eq!(error["code"], -32602);
    nas.shutdown().await;
}
