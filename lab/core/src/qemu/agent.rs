//! The guest agent proxy: qemu-guest-agent in the guest, reached over the VM's
//! virtio-serial channel (`org.qemu.guest_agent.0`, a unix socket on the host side).
//!
//! The channel is a byte stream with no framing; a request the agent never read (it was
//! not running yet) or a reply nobody read may still be in it. So every call first
//! resynchronises with `guest-sync-delimited` and a fresh id: replies are skipped until the
//! 0xFF delimiter and the reply carrying that id.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Why a guest-agent command has no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentError {
    /// The agent is not up yet (PVE: `QEMU guest agent is not running`).
    NotRunning,
    /// The agent answered with an error (PVE: `Agent error: ...`).
    Failed(String),
}

/// An agent that does not answer a sync within this is "not running" (PVE waits about as
/// long for `guest-ping`).
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// Once synced, a command must answer within this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// qemu-server reads files in chunks of this size...
const READ_CHUNK: u64 = 1024 * 1024;
/// ... up to this much (`guest-file-read` in `PVE::API2::Qemu::Agent`).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One VM's guest agent channel; calls are serialised (the channel has no request ids).
pub struct GuestAgent {
    socket: PathBuf,
    channel: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl GuestAgent {
    /// The agent behind `socket`; sync ids count up from `seed` (give each machine its own
    /// range, so that a stale reply of one never matches another's sync).
    pub fn new(socket: PathBuf, seed: u64) -> Self {
        Self {
            socket,
            channel: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(seed),
        }
    }

    /// Runs one agent command (`guest-ping`, `guest-network-get-interfaces`, …); its
    /// `return`.
    pub async fn call(&self, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
        let _turn = self.channel.lock().await;
        self.connect().await?.call(command, arguments).await
    }

    /// Reads a file of the guest as qemu-server does: `{content, bytes-read}`, plus
    /// `truncated: 1` past 16 MiB.
    pub async fn read_file(&self, file: &str) -> Result<Value, AgentError> {
        let _turn = self.channel.lock().await;
        self.connect().await?.read_file(file).await
    }

    async fn connect(&self) -> Result<Connection, AgentError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|_| AgentError::NotRunning)?;
        let (read, writer) = stream.into_split();
        let mut connection = Connection {
            reader: BufReader::new(read),
            writer,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(SYNC_TIMEOUT, connection.sync(id))
            .await
            .map_err(|_| AgentError::NotRunning)??;
        Ok(connection)
    }
}

impl Connection {
    async fn send(&mut self, request: &Value) -> Result<(), AgentError> {
        let mut text = request.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .await
            .map_err(|_| AgentError::NotRunning)
    }

    /// 0xFF resets the agent's parser; the reply to `guest-sync-delimited` is preceded by
    /// 0xFF, so everything before it is stale.
    async fn sync(&mut self, id: u64) -> Result<(), AgentError> {
        self.writer
            .write_all(&[0xFF])
            .await
            .map_err(|_| AgentError::NotRunning)?;
        self.send(&json!({"execute": "guest-sync-delimited", "arguments": {"id": id}}))
            .await?;
        loop {
            let mut skipped = Vec::new();
            let n = self
                .reader
                .read_until(0xFF, &mut skipped)
                .await
                .map_err(|_| AgentError::NotRunning)?;
            if n == 0 {
                return Err(AgentError::NotRunning);
            }
            let reply = self.reply_line().await?;
            if reply.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(());
            }
        }
    }

    async fn reply_line(&mut self) -> Result<Value, AgentError> {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|_| AgentError::NotRunning)?;
        if n == 0 {
            return Err(AgentError::NotRunning);
        }
        line.retain(|b| *b != 0xFF);
        // A stray delimiter or an empty line is not a reply; the caller reads on.
        Ok(serde_json::from_slice(line.trim_ascii()).unwrap_or(Value::Null))
    }

    /// One command; its `return`, or its `error.desc` as an agent error.
    async fn call(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        self.send(&request).await?;
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                let reply = self.reply_line().await?;
                if !reply.is_null() {
                    return Ok::<Value, AgentError>(reply);
                }
            }
        })
        .await
        .map_err(|_| AgentError::Failed(format!("{command}: got timeout")))??;
        if let Some(error) = reply.get("error") {
            let desc = error
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(AgentError::Failed(desc.to_string()));
        }
        Ok(reply.get("return").cloned().unwrap_or(Value::Null))
    }

    /// `guest-file-open` / `guest-file-read` (chunks, base64) / `guest-file-close`, answered
    /// as qemu-server does: `{content, bytes-read}`, plus `truncated: 1` past 16 MiB.
    async fn read_file(&mut self, file: &str) -> Result<Value, AgentError> {
        let handle = self
            .call("guest-file-open", Some(json!({"path": file, "mode": "r"})))
            .await?;
        let result = self.read_all(&handle).await;
        let closed = self
            .call("guest-file-close", Some(json!({"handle": handle})))
            .await;
        let (bytes, truncated) = result?;
        closed?;
        let mut out = json!({
            "content": String::from_utf8_lossy(&bytes),
            "bytes-read": bytes.len(),
        });
        if truncated {
            out["truncated"] = json!(1);
        }
        Ok(out)
    }

    async fn read_all(&mut self, handle: &Value) -> Result<(Vec<u8>, bool), AgentError> {
        let mut bytes = Vec::new();
        loop {
            let chunk = self
                .call(
                    "guest-file-read",
                    Some(json!({"handle": handle, "count": READ_CHUNK})),
                )
                .await?;
            let data = chunk.get("buf-b64").and_then(Value::as_str).unwrap_or("");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| AgentError::Failed(format!("guest-file-read: bad base64: {e}")))?;
            bytes.extend_from_slice(&decoded);
            let eof = chunk.get("eof").and_then(Value::as_bool).unwrap_or(true);
            if eof || decoded.is_empty() {
                return Ok((bytes, false));
            }
            if bytes.len() as u64 >= MAX_FILE_BYTES {
                bytes.truncate(usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX));
                return Ok((bytes, true));
            }
        }
    }
}
