//! One WebSocket to the NAS, shared by concurrent calls: a writer task owns
//! the sink (and sends keep-alive pings), a reader task routes each reply to
//! the caller waiting for its id and each job update to the job waiters.
//!
//! When either task ends, the connection is closed for good: every waiting
//! caller learns its reply is lost, and later calls are refused before they
//! are sent. The client then decides whether to reconnect and resend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::chain;
use crate::wire::{ErrorObject, Incoming, parse_incoming, request_text};

/// Large answers are real (an unfiltered `pool.dataset.query` passes 1 MiB
/// on a NAS with many zvols); 64 MiB leaves room.
const MAX_INCOMING_MESSAGE: usize = 64 * 1024 * 1024;

/// TrueNAS closes authenticated connections that send a bigger frame.
pub(crate) const MAX_OUTGOING_MESSAGE: usize = 64 * 1024;

/// nginx in front of TrueNAS ≤ 25.10 drops a WebSocket silent for 60 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How long closing the socket may take once the connection is over.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type ReplySender = oneshot::Sender<Result<Value, ErrorObject>>;

/// Why a call got no answer from the server.
#[derive(Debug)]
pub(crate) enum RpcFailure {
    /// The server answered with an error object.
    Remote(ErrorObject),
    /// The connection was already closed; nothing was sent.
    NotSent(String),
    /// The connection closed after the request was handed to the socket:
    /// the server may or may not have run it.
    Lost(String),
    /// No answer within the timeout.
    TimedOut(Duration),
    /// The request is over the server's frame limit; nothing was sent.
    TooLarge(usize),
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, ReplySender>,
    /// Set once, when the connection ends; then nothing more is accepted.
    closed: Option<String>,
}

struct Shared {
    pending: Mutex<Pending>,
    job_updates: broadcast::Sender<u64>,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection: callers still waiting see their reply lost.
    fn close(&self, reason: String) {
        let mut pending = self.pending();
        if pending.closed.is_none() {
            tracing::debug!(%reason, "TrueNAS connection closed");
            pending.closed = Some(reason);
        }
        // Dropping the senders wakes every waiter with "lost".
        pending.waiting.clear();
    }
}

pub(crate) struct RpcConnection {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<Message>,
    next_id: AtomicU64,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for RpcConnection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RpcConnection {
    /// The WebSocket handshake to `url` over `tls` (not bounded here: the
    /// caller puts a timeout around the whole connect).
    pub(crate) async fn open(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let config = WebSocketConfig::default().max_message_size(Some(MAX_INCOMING_MESSAGE));
        let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
            url,
            Some(config),
            true,
            Some(Connector::Rustls(tls)),
        )
        .await
        .map_err(|e| chain(&e))?;
        Ok(Self::start(socket))
    }

    fn start(socket: Socket) -> Self {
        let (sink, stream) = socket.split();
        let (job_updates, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            job_updates,
        });
        let (outgoing, requests) = mpsc::channel(32);
        let writer = tokio::spawn(write_loop(sink, requests, shared.clone()));
        let reader = tokio::spawn(read_loop(stream, shared.clone()));
        Self {
            shared,
            outgoing,
            next_id: AtomicU64::new(1),
            tasks: [writer, reader],
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.pending().closed.is_some()
    }

    /// Ids of jobs the server reported a change for (after `core.subscribe
    /// ["core.get_jobs"]`). Lagging receivers just poll.
    pub(crate) fn job_updates(&self) -> broadcast::Receiver<u64> {
        self.shared.job_updates.subscribe()
    }

    /// One call; waits at most `timeout` for its reply.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, RpcFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let text = request_text(id, method, params);
        if text.len() > MAX_OUTGOING_MESSAGE {
            return Err(RpcFailure::TooLarge(text.len()));
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self.shared.pending();
            if let Some(reason) = &pending.closed {
                return Err(RpcFailure::NotSent(reason.clone()));
            }
            pending.waiting.insert(id, reply);
        }
        tracing::trace!(id, method, "TrueNAS call");
        let exchange = async {
            if self.outgoing.send(Message::text(text)).await.is_err() {
                return Err(RpcFailure::NotSent(self.closed_reason()));
            }
            match answer.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(RpcFailure::Remote(error)),
                Err(_) => Err(RpcFailure::Lost(self.closed_reason())),
            }
        };
        let outcome = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(RpcFailure::TimedOut(timeout)));
        if outcome.is_err() {
            self.shared.pending().waiting.remove(&id);
        }
        outcome
    }

    fn closed_reason(&self) -> String {
        self.shared
            .pending()
            .closed
            .clone()
            .unwrap_or_else(|| "the connection closed".to_owned())
    }
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut requests: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) {
    let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
    keepalive.tick().await;
    let reason = loop {
        let message = tokio::select! {
            message = requests.recv() => match message {
                Some(message) => message,
                None => break "the client closed the connection".to_owned(),
            },
            _ = keepalive.tick() => Message::Ping(Vec::new().into()),
        };
        if let Err(e) = sink.send(message).await {
            break format!("sending failed: {}", chain(&e));
        }
    };
    shared.close(reason);
    // A polite close frame, but a half-dead peer must not hold the task.
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

async fn read_loop(mut stream: futures_util::stream::SplitStream<Socket>, shared: Arc<Shared>) {
    let reason = loop {
        let text = match stream.next().await {
            None => break "the server closed the connection".to_owned(),
            Some(Err(e)) => break format!("reading failed: {}", chain(&e)),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                break match frame {
                    Some(frame) => format!(
                        "the server closed the connection ({} {})",
                        u16::from(frame.code),
                        frame.reason
                    ),
                    None => "the server closed the connection".to_owned(),
                };
            }
            // Pings are answered by tungstenite itself; pongs need nothing.
            Some(Ok(_)) => continue,
        };
        match parse_incoming(text.as_str()) {
            Ok(Incoming::Reply { id, outcome }) => {
                let waiter = shared.pending().waiting.remove(&id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(outcome);
                    }
                    None => tracing::debug!(id, "TrueNAS reply nobody waits for (timed out?)"),
                }
            }
            Ok(Incoming::JobChanged { job_id }) => {
                let _ = shared.job_updates.send(job_id);
            }
            Ok(Incoming::Ignored { why }) => tracing::trace!(%why, "TrueNAS frame ignored"),
            Err(why) => break format!("the server sent an unreadable frame: {why}"),
        }
    };
    shared.close(reason);
}
