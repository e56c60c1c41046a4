//! One report, one HTTPS POST to the collector: the certificate pinned by fingerprint, the
//! bearer token read from its file for every send (a re-issued token is picked up without a
//! restart), a timeout around the whole exchange, and the collector's answer sorted into
//! keep-and-retry or drop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use tokio_rustls::TlsConnector;

use crate::config::CollectorConfig;
use crate::report::REPORTS_PATH;

/// The whole exchange: connect, handshake, request, response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body ends up in a log line.
const ERROR_BODY_LIMIT: usize = 512;
/// A Retry-After beyond this is taken as this: the agent should not go quiet for hours.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// What became of one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx: the collector stored it.
    Accepted,
    /// Will never be accepted (400, 403, 409, 413): drop it, saying why.
    Rejected { status: u16, reason: String },
    /// Might be accepted later (network or TLS error, 401, 429, 5xx, anything else): keep it.
    Deferred {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Why a sender could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("collector.url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("collector.fingerprint: {0}")]
    Fingerprint(#[from] kiln_tls::FingerprintError),
    #[error("collector TLS: {0}")]
    Tls(#[from] kiln_tls::TlsError),
}

pub struct Sender {
    uri: Uri,
    host: String,
    port: u16,
    authority: HeaderValue,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    token_file: PathBuf,
}

impl Sender {
    pub fn new(collector: &CollectorConfig) -> Result<Self, SenderError> {
        let url_error = |reason: &str| SenderError::Url {
            url: collector.url.clone(),
            reason: reason.to_owned(),
        };
        let full = format!("{}{REPORTS_PATH}", collector.url.trim_end_matches('/'));
        let uri: Uri = full.parse().map_err(|_| url_error("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(url_error("must start with https://"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| url_error("has no host"))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| url_error("the host is not a valid name"))?;
        let pin: kiln_tls::Fingerprint = collector.fingerprint.parse()?;
        let mut config = kiln_tls::Trust::Pin(pin).client_config()?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            port: authority.port_u16().unwrap_or(443),
            authority: HeaderValue::from_str(authority.as_str())
                .map_err(|_| url_error("bad host"))?,
            uri,
            host,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            token_file: collector.token_file.clone(),
        })
    }

    /// POSTs one report body and classifies the answer.
    pub async fn send(&self, body: Vec<u8>) -> Delivery {
        let token = match read_token(&self.token_file) {
            Ok(token) => token,
            Err(reason) => return deferred(reason),
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(body, &token)).await {
            Err(_) => deferred(format!(
                "{}: no answer within {} s",
                self.uri,
                REQUEST_TIMEOUT.as_secs()
            )),
            Ok(Err(reason)) => deferred(format!("{}: {reason}", self.uri)),
            Ok(Ok((status, retry_after, text))) => classify(status, retry_after, text),
        }
    }

    async fn exchange(
        &self,
        body: Vec<u8>,
        token: &SecretString,
    ) -> Result<(StatusCode, Option<Duration>, String), String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|error| format!("TLS: {error}"))?;
        let (mut request_sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|error| format!("HTTP: {error}"))?;
        let connection = tokio::spawn(connection);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| {
                format!(
                    "the token in {} is not a valid header value",
                    self.token_file.display()
                )
            })?;
        bearer.set_sensitive(true);
        let request = Request::post(self.uri.clone())
            .header(HOST, self.authority.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("kiln-agent/", env!("CARGO_PKG_VERSION")),
            )
            .header(AUTHORIZATION, bearer)
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| format!("request: {error}"))?;
        let response = request_sender
            .send_request(request)
            .await
            .map_err(|error| format!("HTTP: {error}"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(RETRY_AFTER_CAP));
        let text = match Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
        {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
                .trim()
                .to_owned(),
            Err(_) => String::new(),
        };
        connection.abort();
        Ok((status, retry_after, text))
    }
}

fn deferred(reason: String) -> Delivery {
    Delivery::Deferred {
        reason,
        retry_after: None,
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, text: String) -> Delivery {
    let said = if text.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", text.lines().next().unwrap_or_default())
    };
    match status.as_u16() {
        200..=299 => Delivery::Accepted,
        409 => Delivery::Rejected {
            status: 409,
            reason: format!("the collector already has this sequence number ({said})"),
        },
        code @ (400 | 403 | 413) => Delivery::Rejected {
            status: code,
            reason: format!("the collector will never accept it ({said})"),
        },
        _ => Delivery::Deferred {
            reason: format!("the collector answered {said}"),
            retry_after,
        },
    }
}

/// The token file must be readable by its owner only: a token others can read is as good as
/// published. Its content is never logged.
fn read_token(path: &Path) -> Result<SecretString, String> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("token file {}: {error}", path.display()))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "token file {} has mode {mode:04o}; it must be readable by its owner only (0600)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("token file {}: {error}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("token file {} is empty", path.display()));
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: u16) -> Delivery {
        classify(StatusCode::from_u16(status).unwrap(), None, String::new())
    }

    #[test]
    fn sorts_answers_into_keep_and_drop() {
        assert_eq!(code(202), Delivery::Accepted);
        for dropped in [400, 403, 409, 413] {
            assert!(
                matches!(code(dropped), Delivery::Rejected { status, .. } if status == dropped)
            );
        }
        for kept in [401, 404, 429, 500, 503] {
            assert!(matches!(code(kept), Delivery::Deferred { .. }), "{kept}");
        }
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_without_showing_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_token(&path).unwrap_err();
        assert!(error.contains("0644"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&path).unwrap().expose_secret(), "s3cr3t-token");
    }
}
