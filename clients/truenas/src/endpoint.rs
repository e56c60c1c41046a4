//! Where the NAS is and which API version to speak: the base endpoint as the
//! inventory names it (`https://nas.lan[:port]`), the TLS config (kiln-tls
//! trust, ALPN `http/1.1` only), and `GET /api/versions`.
//!
//! TrueNAS's nginx offers h2; a WebSocket upgrade needs HTTP/1.1, so the
//! client never offers anything else. The version list is read with a
//! one-shot HTTP/1.1 request over the same TLS config: it is the only plain
//! HTTP kiln does with TrueNAS, not worth an HTTP client crate.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result, chain};

/// The API version kiln's payloads are written against (TrueNAS 25.10.5's
/// schemas); newer releases keep serving it through adapters.
pub const PINNED_API_VERSION: &str = "v25.10.5";

/// What TrueNAS serves as "the newest version"; used when the pinned one is
/// not listed.
pub const CURRENT_API_VERSION: &str = "current";

/// The version listing is a short JSON array; anything bigger is not it.
const MAX_VERSIONS_RESPONSE: usize = 64 * 1024;

/// `https://host[:port]` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseEndpoint {
    /// As given, without a trailing slash: what errors name.
    pub display: String,
    /// Host for DNS/TCP and SNI (no brackets around IPv6).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as it goes into URLs and the `Host` header.
    pub authority: String,
}

impl BaseEndpoint {
    pub(crate) fn parse(endpoint: &str) -> Result<Self> {
        let display = endpoint.trim().trim_end_matches('/').to_owned();
        let Some(authority) = display.strip_prefix("https://") else {
            return Err(Error::Config(format!(
                "endpoint {display:?} must start with https:// — TrueNAS revokes an API key \
                 that is sent over plain HTTP or ws://"
            )));
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(Error::Config(format!(
                "endpoint {display:?} must be https://host[:port] with no path"
            )));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            Error::Config(format!("endpoint {display:?}: cannot read host and port"))
        })?;
        Ok(Self {
            authority: authority.to_owned(),
            host,
            port,
            display,
        })
    }

    pub(crate) fn websocket_url(&self, api_version: &str) -> String {
        format!("wss://{}/api/{api_version}", self.authority)
    }

    pub(crate) fn server_name(&self) -> Result<ServerName<'static>> {
        ServerName::try_from(self.host.clone())
            .map_err(|e| Error::Config(format!("endpoint {:?}: {e}", self.display)))
    }
}

fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => 443,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority.to_owned(), 443)),
    }
}

/// The rustls config for every connection to the NAS: kiln-tls's trust
/// (pinned fingerprint, CA file or system roots) with ALPN `http/1.1` only.
pub(crate) fn tls_config(trust: &kiln_tls::Trust) -> Result<Arc<rustls::ClientConfig>> {
    let mut config = trust
        .client_config()
        .map_err(|e| Error::Config(format!("TLS: {}", chain(&e))))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Picks the version to speak from what the server lists.
pub(crate) fn choose_version(offered: &[String]) -> String {
    if offered.iter().any(|v| v == PINNED_API_VERSION) {
        PINNED_API_VERSION.to_owned()
    } else {
        CURRENT_API_VERSION.to_owned()
    }
}

/// `GET /api/versions` (no auth), bounded by `timeout` as a whole.
pub(crate) async fn fetch_versions(
    base: &BaseEndpoint,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Vec<String>> {
    let step = "GET /api/versions";
    let transport = |detail: String| Error::Transport {
        endpoint: base.display.clone(),
        step: step.to_owned(),
        detail,
    };
    let exchange = async {
        let tcp = TcpStream::connect((base.host.as_str(), base.port))
            .await
            .map_err(|e| transport(chain(&e)))?;
        let mut stream = TlsConnector::from(tls)
            .connect(base.server_name()?, tcp)
            .await
            .map_err(|e| transport(chain(&e)))?;
        let request = format!(
            "GET /api/versions HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             User-Agent: kiln/{}\r\nConnection: close\r\n\r\n",
            base.authority,
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| transport(chain(&e)))?;
        read_response(&mut stream).await.map_err(transport)
    };
    let body = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::Timeout {
            endpoint: base.display.clone(),
            method: step.to_owned(),
            after: timeout,
            mutating: false,
        })??;
    serde_json::from_slice(&body).map_err(|e| Error::Decode {
        endpoint: base.display.clone(),
        method: step.to_owned(),
        reason: format!("expected a JSON list of version names: {e}"),
    })
}

/// Reads until the response is complete (by `Content-Length`, chunked
/// encoding, or the server closing), then answers the body of a 200.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::result::Result<Vec<u8>, String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(response) = complete_response(&buffer, false)? {
            return response;
        }
        if buffer.len() > MAX_VERSIONS_RESPONSE {
            return Err(format!(
                "response larger than {MAX_VERSIONS_RESPONSE} bytes"
            ));
        }
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            // Servers often close TLS without close_notify; what we have
            // may already be the whole answer.
            Err(e) if buffer.is_empty() => return Err(chain(&e)),
            Err(_) => break,
        }
    }
    match complete_response(&buffer, true)? {
        Some(response) => response,
        None => Err("the connection closed before the response was complete".to_owned()),
    }
}

type Response = std::result::Result<Vec<u8>, String>;

/// `None` while more bytes are needed; at end of stream, what there is.
fn complete_response(buffer: &[u8], at_eof: bool) -> std::result::Result<Option<Response>, String> {
    let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]);
    let body = &buffer[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        match dechunk(body)? {
            Some(body) => body,
            None if at_eof => return Err("truncated chunked body".to_owned()),
            None => return Ok(None),
        }
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < length {
            return if at_eof {
                Err("truncated body".to_owned())
            } else {
                Ok(None)
            };
        }
        body[..length].to_vec()
    } else if at_eof {
        body.to_vec()
    } else {
        return Ok(None);
    };
    if status != 200 {
        let text = String::from_utf8_lossy(&body)
            .chars()
            .take(200)
            .collect::<String>();
        return Ok(Some(Err(format!("HTTP {status}: {text}"))));
    }
    Ok(Some(Ok(body)))
}

/// Decodes a chunked body; `None` until the terminating chunk has arrived.
fn dechunk(mut rest: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    // Each pass consumes one chunk; the buffer is bounded, so is the loop.
    while !rest.is_empty() {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        let data_start = line_end + 2;
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < data_start + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[data_start..data_start + size]);
        rest = &rest[data_start + size + 2..];
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let base = BaseEndpoint::parse("https://nas.lan/").unwrap();
        assert_eq!((base.host.as_str(), base.port), ("nas.lan", 443));
        assert_eq!(base.websocket_url("v25.10.5"), "wss://nas.lan/api/v25.10.5");
        let base = BaseEndpoint::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!((base.host.as_str(), base.port), ("127.0.0.1", 8443));
        let base = BaseEndpoint::parse("https://[::1]:8443").unwrap();
        assert_eq!((base.host.as_str(), base.port), ("::1", 8443));
        assert_eq!(
            base.websocket_url("current"),
            "wss://[::1]:8443/api/current"
        );
        assert!(base.server_name().is_ok());
    }

    #[test]
    fn refuses_plain_http_and_paths() {
        for bad in [
            "http://nas.lan",
            "ws://nas.lan",
            "nas.lan",
            "https://nas.lan/api/current",
            "https://",
            "https://nas.lan:notaport",
            "https://user@nas.lan",
        ] {
            let error = BaseEndpoint::parse(bad).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{bad}: {error}");
        }
        let text = BaseEndpoint::parse("http://nas.lan")
            .unwrap_err()
            .to_string();
        assert!(text.contains("revokes"), "{text}");
    }

    #[test]
    fn prefers_the_pinned_version() {
        let offered = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            choose_version(&offered(&["v25.04.2", "v25.10.5", "v26.0.0"])),
            "v25.10.5"
        );
        assert_eq!(
            choose_version(&offered(&["v25.04.2", "v26.0.0"])),
            "current"
        );
        assert_eq!(choose_version(&[]), "current");
    }

    #[test]
    fn alpn_is_http1_only() {
        let pin = kiln_tls::Trust::Pin(kiln_tls::Fingerprint::from_bytes([1; 32]));
        let config = tls_config(&pin).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn reads_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n[\"v25.10.5\"]\n\n";
        assert_eq!(
            complete_response(plain, false).unwrap().unwrap().unwrap(),
            b"[\"v25.10.5\"]\n\n"
        );
        let partial = &plain[..plain.len() - 3];
        assert!(complete_response(partial, false).unwrap().is_none());
        assert!(complete_response(partial, true).is_err());

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[\"v25\r\n8\r\n.10.5\"]\n\r\n0\r\n\r\n";
        assert_eq!(
            complete_response(chunked, false).unwrap().unwrap().unwrap(),
            b"[\"v25.10.5\"]\n"
        );
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n[]";
        assert!(complete_response(until_close, false).unwrap().is_none());
        assert_eq!(
            complete_response(until_close, true)
                .unwrap()
                .unwrap()
                .unwrap(),
            b"[]"
        );
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
        let error = complete_response(missing, false)
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(error, "HTTP 404: not found");
    }
}
