//! A QMP client: one connection per command (QEMU's `-qmp unix:...,server=on,wait=off`
//! accepts one client at a time; commands are rare: start, stop, shutdown, resize).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Runs one QMP command and returns its `return` value.
pub(crate) async fn execute(
    socket: &Path,
    command: &str,
    arguments: Option<Value>,
    timeout: Duration,
) -> Result<Value, String> {
    tokio::time::timeout(timeout, exchange(socket, command, arguments))
        .await
        .map_err(|_| format!("qmp command '{command}' failed - got timeout"))?
}

async fn exchange(socket: &Path, command: &str, arguments: Option<Value>) -> Result<Value, String> {
    let fail = |e: String| format!("qmp command '{command}' failed - {e}");
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| fail(format!("unable to connect to {}: {e}", socket.display())))?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    // The greeting, then capabilities negotiation.
    next_reply(&mut lines).await.map_err(fail)?;
    write
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .await
        .map_err(|e| fail(e.to_string()))?;
    next_reply(&mut lines).await.map_err(fail)?;
    let mut request = json!({ "execute": command });
    if let Some(arguments) = arguments {
        request["arguments"] = arguments;
    }
    let mut text = request.to_string();
    text.push('\n');
    write
        .write_all(text.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let reply = next_reply(&mut lines).await.map_err(fail)?;
    if let Some(error) = reply.get("error") {
        let desc = error
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(fail(desc.to_string()));
    }
    Ok(reply.get("return").cloned().unwrap_or(Value::Null))
}

/// The next message that is not an asynchronous event.
async fn next_reply(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<Value, String> {
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "connection closed".to_string())?;
        let message: Value =
            serde_json::from_str(&line).map_err(|e| format!("unreadable reply: {e}"))?;
        if message.get("event").is_none() {
            return Ok(message);
        }
    }
}
