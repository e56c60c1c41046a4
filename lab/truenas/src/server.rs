//! The transport, playing TrueNAS's nginx and middleware: TLS (or plain, for the port-80
//! case), one HTTP/1.1 request per connection — `GET /api/versions`, or a WebSocket upgrade
//! at `/api/current` / `/api/v25.10.5` — then the JSON-RPC session (`session.rs`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::API_VERSION;
use crate::auth::{Auth, secure_transport};
use crate::calllog::CallLog;
use crate::datapath::DataPath;
use crate::jobs::Jobs;
use crate::lab::TruenasFaults;
use crate::schema::Schema;
use crate::session;
use crate::state::State;

/// A TLS handshake or request head that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// nginx's default limit on a request head is 8 KiB (large buffers 4 × 8 KiB).
const MAX_HEAD: usize = 32 * 1024;
/// The largest frame read at all (the middleware allows 2 MiB for uploads only).
const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Everything a connection needs.
pub(crate) struct App {
    pub schema: Schema,
    state: Mutex<State>,
    pub auth: Auth,
    pub jobs: Jobs,
    pub log: CallLog,
    pub faults: TruenasFaults,
    pub data_path: Arc<dyn DataPath>,
    /// Calls answered so far, for `drop_connection_after`.
    pub calls_answered: AtomicU32,
    /// Whether the one injected drop happened.
    pub dropped: AtomicBool,
    /// Unauthenticated calls per (method, source address), for the rate limit.
    pub unauthenticated_calls: RateLimit,
}

impl App {
    pub(crate) fn new(
        schema: Schema,
        state: State,
        auth: Auth,
        log: CallLog,
        faults: TruenasFaults,
        data_path: Arc<dyn DataPath>,
    ) -> Self {
        Self {
            schema,
            state: Mutex::new(state),
            auth,
            jobs: Jobs::new(),
            log,
            faults,
            data_path,
            calls_answered: AtomicU32::new(0),
            dropped: AtomicBool::new(false),
            unauthenticated_calls: RateLimit::default(),
        }
    }

    /// The NAS's state. A panic elsewhere leaves it usable (each change is applied whole).
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `utils/rate_limit/cache.py`: calls to methods that need no authentication, made by a
/// connection that has not logged in, are limited to 20 per 60 s per method and source
/// address (authenticated sessions never are).
#[derive(Default)]
pub(crate) struct RateLimit {
    /// (method, address) → (calls in the window, start of the window).
    calls: Mutex<HashMap<(String, IpAddr), (usize, Instant)>>,
}

impl RateLimit {
    pub(crate) const LIMIT: usize = 20;
    pub(crate) const WINDOW: Duration = Duration::from_secs(60);

    /// Counts a call; false when it is over the limit. The window restarts 60 s after it
    /// began (`RateLimit.rate_limit_exceeded`), it does not slide.
    pub(crate) fn allow(&self, method: &str, origin: IpAddr) -> bool {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let entry = calls
            .entry((method.to_string(), origin))
            .or_insert((0, now));
        if now.duration_since(entry.1) >= Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        entry.0 <= Self::LIMIT
    }
}

/// Accepts connections until `shutdown` turns true; TLS when `tls` is given.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let (tls, app, mut shutdown) = (tls.clone(), Arc::clone(&app), shutdown.clone());
        tokio::spawn(async move {
            let served = async {
                match tls {
                    Some(tls) => {
                        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp));
                        if let Ok(Ok(stream)) = handshake.await {
                            connection(stream, true, peer, app).await;
                        }
                    }
                    None => connection(tcp, false, peer, app).await,
                }
            };
            tokio::select! {
                _ = served => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads up to the end of the head; the head and whatever followed it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(Head, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let method = request.next()?.to_string();
    let path = request.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((
        Head {
            method,
            path,
            headers,
        },
        buf[end..].to_vec(),
    ))
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: nginx\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn connection<S>(mut stream: S, tls: bool, peer: SocketAddr, app: Arc<App>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(Some((head, rest))) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut stream)).await
    else {
        return;
    };
    let path = head.path.split('?').next().unwrap_or_default();
    let websocket_path = path == "/api/current" || path == format!("/api/{API_VERSION}");
    let upgrade = head
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let reply = match (head.method.as_str(), path) {
        ("GET", "/api/versions") => {
            // The versions served here: only the one the schema describes.
            let body = serde_json::to_string(&[API_VERSION]).unwrap_or_default();
            Some(response("200 OK", "application/json", &body))
        }
        ("GET", _) if websocket_path && upgrade => None,
        ("GET", _) if websocket_path => Some(response(
            "400 Bad Request",
            "text/plain",
            "Expected a WebSocket upgrade",
        )),
        _ => Some(response("404 Not Found", "text/plain", "404: Not Found")),
    };
    if let Some(reply) = reply {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let Some(key) = head.header("sec-websocket-key") else {
        let reply = response("400 Bad Request", "text/plain", "Missing Sec-WebSocket-Key");
        let _ = stream.write_all(reply.as_bytes()).await;
        return;
    };
    let accept = derive_accept_key(key.as_bytes());
    let switching = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(switching.as_bytes()).await.is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await;
    let origin: IpAddr = peer.ip();
    session::run(ws, secure_transport(tls, origin), origin, app).await;
}
