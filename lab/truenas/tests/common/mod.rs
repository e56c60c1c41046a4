//! A raw JSON-RPC-over-WebSocket client for the tests: TLS pinned to the emulator's
//! fingerprint, ALPN http/1.1, frames sent exactly as written.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kiln_lab_truenas::{RunningTruenas, TruenasConfig};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Trusts exactly the emulator's certificate (kiln's own pin verifier),
/// with ALPN http/1.1 as TrueNAS's nginx needs for a WebSocket upgrade.
pub fn tls_config(fingerprint: &str) -> Arc<rustls::ClientConfig> {
    let pin = fingerprint.parse().expect("the emulator's fingerprint");
    let mut config = kiln_tls::Trust::Pin(pin).client_config().unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub async fn start() -> RunningTruenas {
    start_with(TruenasConfig::default()).await
}

pub async fn start_with(config: TruenasConfig) -> RunningTruenas {
    kiln_lab_truenas::start(config).await.unwrap()
}

/// One WebSocket connection.
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Notifications received while waiting for answers.
    pub notifications: VecDeque<Value>,
}

impl Raw {
    pub async fn connect(nas: &RunningTruenas) -> Self {
        Self::connect_path(nas, "/api/current").await
    }

    pub async fn connect_path(nas: &RunningTruenas, path: &str) -> Self {
        let url = format!("wss://{}{path}", nas.local_addr);
        let tcp = TcpStream::connect(nas.local_addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
            url,
            tcp,
            None,
            Some(Connector::Rustls(tls_config(&nas.fingerprint))),
        )
        .await
        .unwrap();
        Self {
            ws,
            next_id: 0,
            notifications: VecDeque::new(),
        }
    }

    /// An authenticated connection.
    pub async fn logged_in(nas: &RunningTruenas) -> Self {
        let mut raw = Self::connect(nas).await;
        let answer = raw
            .call("auth.login_with_api_key", json!([nas.api_key()]))
            .await;
        assert_eq!(answer["result"], json!(true), "{answer}");
        raw
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// The next message (notification or answer), or None when the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("no message within 20 s");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(other)) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The answer to the message with this id; notifications on the way are kept.
    pub async fn answer_to(&mut self, id: &Value) -> Value {
        let is_answer = |m: &Value| {
            m.get("id") == Some(id) && (m.get("result").is_some() || m.get("error").is_some())
        };
        if let Some(pos) = self.notifications.iter().position(is_answer) {
            return self.notifications.remove(pos).unwrap_or_default();
        }
        for _ in 0..1000 {
            let message = self.recv().await.expect("socket closed before the answer");
            if message.get("id") == Some(id)
                && (message.get("result").is_some() || message.get("error").is_some())
            {
                return message;
            }
            self.notifications.push_back(message);
        }
        panic!("no answer to {id}");
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends a call and returns the whole response (`result` or `error`).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id();
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&request.to_string()).await;
        self.answer_to(&json!(id)).await
    }

    /// A call that must succeed: its result.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let answer = self.call(method, params).await;
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// A call that must fail: its error object.
    pub async fn err(&mut self, method: &str, params: Value) -> Value {
        let answer = self.call(method, params).await;
        assert!(
            answer.get("error").is_some(),
            "{method} succeeded: {answer}"
        );
        answer["error"].clone()
    }
}

/// A plain HTTPS GET (the emulator answers one request per connection).
pub async fn https_get(nas: &RunningTruenas, path: &str) -> (String, String) {
    let connector = tokio_rustls::TlsConnector::from(tls_config(&nas.fingerprint));
    let tcp = TcpStream::connect(nas.local_addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tls.read_to_string(&mut out).await.ok();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The `data.extra` list of an error as (attribute, message, errno).
pub fn extra(error: &Value) -> Vec<(Value, String, i64)> {
    error["data"]["extra"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e[0].clone(),
                e[1].as_str().unwrap_or_default().to_string(),
                e[2].as_i64().unwrap_or(0),
            )
        })
        .collect()
}
