//! One WebSocket connection (`RpcWebSocketApp` in the middleware): its login, its
//! `legacy_jobs` option, its subscriptions, and its calls — run concurrently, at most 10 at
//! once, and refused with -32000 beyond 20 outstanding (`SoftHardSemaphore(10, 20)`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::calllog::{LoggedCall, mask_params, now_rfc3339};
use crate::methods;
use crate::rpc::{self, EBUSY, ENOTAUTHENTICATED, Incoming, Request, RpcError};
use crate::server::App;

/// Calls that run at once on one connection.
const RUNNING_CALLS: usize = 10;
/// Calls outstanding (running or waiting) beyond which a call is refused.
const OUTSTANDING_CALLS: usize = 20;
/// `utils/limits.py`: frame size before and after login.
const UNAUTHENTICATED_LIMIT: usize = 8 * 1024;
const AUTHENTICATED_LIMIT: usize = 64 * 1024;

/// A connection's own state.
pub(crate) struct Session {
    /// TLS or loopback (`secure_transport`).
    pub secure: bool,
    /// The client's address.
    origin: IpAddr,
    authenticated: AtomicBool,
    /// Whose key logged in (`methods/accounts.rs`): decides what the session may call.
    caller: Mutex<Option<methods::accounts::Caller>>,
    legacy_jobs: AtomicBool,
    private_methods: AtomicBool,
    py_exceptions: AtomicBool,
    subscriptions: Mutex<HashMap<String, String>>,
    outgoing: mpsc::UnboundedSender<Message>,
    boot_id: String,
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

impl Session {
    pub(crate) fn set_authenticated(&self) {
        self.authenticated.store(true, Ordering::SeqCst);
    }

    pub(crate) fn set_unauthenticated(&self) {
        self.authenticated.store(false, Ordering::SeqCst);
        self.set_caller(None);
    }

    pub(crate) fn set_caller(&self, caller: Option<methods::accounts::Caller>) {
        if let Ok(mut c) = self.caller.lock() {
            *c = caller;
        }
    }

    pub(crate) fn caller(&self) -> Option<methods::accounts::Caller> {
        self.caller.lock().ok().and_then(|c| *c)
    }

    fn authenticated(&self) -> bool {
        self.authenticated.load(Ordering::SeqCst)
    }

    /// `core.set_options`: the options given change, all three are answered.
    pub(crate) fn set_options(&self, options: &serde_json::Value) -> serde_json::Value {
        for (name, flag) in [
            ("legacy_jobs", &self.legacy_jobs),
            ("private_methods", &self.private_methods),
            ("py_exceptions", &self.py_exceptions),
        ] {
            if let Some(value) = options.get(name).and_then(serde_json::Value::as_bool) {
                flag.store(value, Ordering::SeqCst);
            }
        }
        serde_json::json!({
            "legacy_jobs": self.legacy_jobs.load(Ordering::SeqCst),
            "private_methods": self.private_methods.load(Ordering::SeqCst),
            "py_exceptions": self.py_exceptions.load(Ordering::SeqCst),
        })
    }

    pub(crate) fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// `core.subscribe [name]` → an ident (a UUID) for `core.unsubscribe`.
    pub(crate) fn subscribe(&self, name: &str) -> String {
        let hex = random_hex(32);
        let ident = format!(
            "{}-{}-4{}-a{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        );
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.insert(ident.clone(), name.to_string());
        }
        ident
    }

    pub(crate) fn unsubscribe(&self, ident: &str) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.remove(ident);
        }
    }

    fn subscribed(&self, collection: &str) -> bool {
        self.subscriptions
            .lock()
            .is_ok_and(|subs| subs.values().any(|n| n == collection || n == "*"))
    }

    fn send(&self, value: &Value) {
        let _ = self.outgoing.send(Message::text(value.to_string()));
    }
}

/// Serves one connection until the client leaves, a limit is broken, or a fault drops it.
pub(crate) async fn run<S>(ws: WebSocketStream<S>, secure: bool, origin: IpAddr, app: Arc<App>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let session = Arc::new(Session {
        secure,
        origin,
        authenticated: AtomicBool::new(false),
        caller: Mutex::new(None),
        legacy_jobs: AtomicBool::new(true),
        private_methods: AtomicBool::new(false),
        py_exceptions: AtomicBool::new(false),
        subscriptions: Mutex::new(HashMap::new()),
        outgoing,
        boot_id: random_hex(32),
    });
    let events = {
        let (session, mut jobs) = (Arc::clone(&session), app.jobs.subscribe());
        tokio::spawn(async move {
            loop {
                match jobs.recv().await {
                    Ok(event) if session.subscribed("core.get_jobs") => {
                        session.send(&rpc::notification("collection_update", event));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        })
    };
    let outstanding = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(Semaphore::new(RUNNING_CALLS));
    while let Some(Ok(message)) = stream.next().await {
        let text = match message {
            Message::Text(text) => text,
            Message::Ping(payload) => {
                let _ = session.outgoing.send(Message::Pong(payload));
                continue;
            }
            Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(_) => break,
            Message::Binary(_) => {
                close(
                    &session,
                    CloseCode::Unsupported,
                    "Invalid websocket message type: BINARY",
                );
                break;
            }
        };
        let limit = if session.authenticated() {
            AUTHENTICATED_LIMIT
        } else {
            UNAUTHENTICATED_LIMIT
        };
        if text.len() > limit {
            close(
                &session,
                CloseCode::Size,
                &format!("Max message length is {} kB", limit / 1024),
            );
            break;
        }
        let request = match rpc::parse(text.as_str()) {
            Incoming::Call(request) => request,
            Incoming::Reply(reply) => {
                session.send(&reply);
                continue;
            }
            Incoming::Ignore => continue,
        };
        if should_drop(&app) {
            record(&app, &request, Err(None));
            tracing::info!("fault: dropping the connection at call {}", request.method);
            break;
        }
        if outstanding.fetch_add(1, Ordering::SeqCst) >= OUTSTANDING_CALLS {
            outstanding.fetch_sub(1, Ordering::SeqCst);
            let error = RpcError::TooManyCalls;
            record(&app, &request, Err(Some(error.code())));
            if let Some(id) = &request.id {
                session.send(&rpc::error(id, &error));
            }
            continue;
        }
        let (app, session, outstanding, running) = (
            Arc::clone(&app),
            Arc::clone(&session),
            Arc::clone(&outstanding),
            Arc::clone(&running),
        );
        tokio::spawn(async move {
            let permit = running.acquire_owned().await;
            let answer = answer(&app, &session, &request).await;
            drop(permit);
            outstanding.fetch_sub(1, Ordering::SeqCst);
            record(
                &app,
                &request,
                answer.as_ref().map(|_| ()).map_err(|e| Some(e.code())),
            );
            app.calls_answered.fetch_add(1, Ordering::SeqCst);
            if let Some(id) = &request.id {
                let reply = match answer {
                    Ok(result) => rpc::result(id, result),
                    Err(error) => rpc::error(id, &error),
                };
                session.send(&reply);
            }
        });
    }
    events.abort();
    drop(session);
    // The writer ends once every call task has sent its answer and dropped its session.
    let _ = writer.await;
}

fn close(session: &Session, code: CloseCode, reason: &str) {
    let _ = session.outgoing.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    })));
}

/// `drop_connection_after`: once, after N calls answered.
fn should_drop(app: &App) -> bool {
    match app.faults.drop_connection_after {
        Some(n) if app.calls_answered.load(Ordering::SeqCst) >= n => {
            !app.dropped.swap(true, Ordering::SeqCst)
        }
        _ => false,
    }
}

/// One call through the pipeline: delay fault, method lookup, authentication, params,
/// the method (or its job), and in debug builds the result schema.
async fn answer(
    app: &Arc<App>,
    session: &Arc<Session>,
    request: &Request,
) -> Result<Value, RpcError> {
    if let Some(delay) = app.faults.call_delay {
        tokio::time::sleep(delay).await;
    }
    let Some(spec) = app.schema.method(&request.method) else {
        return Err(RpcError::MethodNotFound);
    };
    if !session.authenticated() {
        if spec.authentication_required {
            return Err(RpcError::call(ENOTAUTHENTICATED, "Not authenticated"));
        }
        if request.method != "core.set_options"
            && !app
                .unauthenticated_calls
                .allow(&request.method, session.origin)
        {
            // The middleware makes the caller wait 1–10 s before it says so.
            let wait = rand::rng().random_range(1000..=10_000);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            return Err(RpcError::call(EBUSY, "Rate Limit Exceeded"));
        }
    }
    if session.authenticated() {
        methods::accounts::authorize(app, session, spec)?;
    }
    spec.check_params(&request.params)?;
    let result = if spec.job {
        run_job(app, session, request).await?
    } else {
        methods::call(app, session, &request.method, &request.params).await?
    };
    #[cfg(debug_assertions)]
    {
        // A result the schema does not describe is the emulator's bug: make it loud.
        let legacy_job_id = spec.job && result.is_u64();
        if !legacy_job_id && let Err(e) = spec.check_result(&result) {
            tracing::error!("{} result does not match its schema: {e}", request.method);
            return Err(RpcError::Exception(format!(
                "result of {} does not match the result schema: {e}",
                request.method
            )));
        }
    }
    Ok(result)
}

/// A job method: the job id at once (legacy), or the job's outcome when it ends.
async fn run_job(
    app: &Arc<App>,
    session: &Arc<Session>,
    request: &Request,
) -> Result<Value, RpcError> {
    if !methods::has_job(&request.method) {
        return Err(methods::not_emulated(&request.method));
    }
    let arguments = mask_params(
        &request.method,
        &Value::Array(request.params.clone()),
        &[app.auth.key()],
    );
    let id = app
        .jobs
        .start(&request.method, arguments, request.id.as_ref());
    let body = {
        let (app, method, params) = (
            Arc::clone(app),
            request.method.clone(),
            request.params.clone(),
        );
        async move {
            let outcome = if app.faults.failing_job.as_deref() == Some(method.as_str()) {
                Err(RpcError::call(
                    rpc::EFAULT,
                    format!("Injected failure of {method}"),
                ))
            } else {
                methods::job(&app, &method, &params)
                    .await
                    .unwrap_or_else(|| Err(methods::not_emulated(&method)))
            };
            app.jobs.finish(id, outcome);
        }
    };
    if session.legacy_jobs.load(Ordering::SeqCst) {
        tokio::spawn(body);
        Ok(Value::from(id))
    } else {
        body.await;
        app.jobs.wait(id).await
    }
}

/// Logs a call: `Ok` answered, `Err(Some(code))` refused, `Err(None)` dropped.
fn record(app: &App, request: &Request, outcome: Result<(), Option<i64>>) {
    let secrets: Vec<String> = {
        let state = app.state();
        let mut s: Vec<String> = state
            .iscsi
            .auths
            .rows()
            .flat_map(|a| [a["secret"].as_str(), a["peersecret"].as_str()])
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        s.push(app.auth.key().to_string());
        s
    };
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    app.log.record(LoggedCall {
        time: now_rfc3339(),
        method: request.method.clone(),
        params: mask_params(
            &request.method,
            &Value::Array(request.params.clone()),
            &secrets,
        ),
        ok: outcome.is_ok(),
        error_code: outcome.err().flatten(),
    });
}
