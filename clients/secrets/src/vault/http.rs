//! The HTTP layer of kiln's Vault client: one reqwest client on the ring
//! provider, TLS trust from kiln-tls, no redirects (a redirect would carry
//! the token elsewhere), timeouts on every call, and the token header marked
//! sensitive so no log or debug output of a request can show it.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use super::error::{VaultError, chain_text, is_tls_refusal};

const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-vault-token");
const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-vault-namespace");
const REQUEST_HEADER: HeaderName = HeaderName::from_static("x-vault-request");

/// How kiln reaches one Vault server. Holds no credential.
pub struct Http {
    client: reqwest::Client,
    address: String,
    namespace: Option<String>,
}

/// What a call answered: the status, and the JSON body when there was one.
pub struct Answer {
    pub status: StatusCode,
    pub body: Option<Value>,
}

/// Statuses of a Vault that is there but cannot serve right now.
const TRANSIENT: [u16; 3] = [502, 503, 504];
/// Retries of a read after the first attempt (about 0.2 + 0.4 + 0.8 s).
const RETRIES: usize = 3;

/// One attempt's outcome, when it is not a usable answer.
enum Attempt {
    Failed(VaultError),
    Transient(Answer),
}

impl Attempt {
    fn reason(&self) -> String {
        match self {
            Self::Failed(error) => error.to_string(),
            Self::Transient(answer) => answer.status.to_string(),
        }
    }
}

/// Where the server certificate's trust comes from.
pub enum TlsTrust {
    /// `http://` on loopback: no TLS at all.
    PlainLoopback,
    Verified(kiln_tls::Trust),
}

impl Http {
    pub fn new(
        address: &str,
        namespace: Option<String>,
        trust: TlsTrust,
    ) -> Result<Self, VaultError> {
        let tls = match trust {
            TlsTrust::Verified(trust) => trust.client_config()?,
            // reqwest without a default provider needs some config even for
            // plain HTTP; an empty root store makes any TLS attempt fail.
            TlsTrust::PlainLoopback => {
                rustls::ClientConfig::builder_with_provider(kiln_tls::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(kiln_tls::TlsError::from)?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| {
                VaultError::Config(format!("cannot build the HTTP client: {error}"))
            })?;
        Ok(Self {
            client,
            address: address.trim_end_matches('/').to_owned(),
            namespace,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// One API call to `/v1/<path>`. Statuses are returned, not judged: the
    /// caller knows whether 404 means "absent" or "wrong mount".
    ///
    /// Reads (GET, LIST) are retried with backoff when Vault is unreachable
    /// or answers 502/503/504 (a restarting or standby node); writes are
    /// not, since only the caller knows whether a write may be repeated.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Answer, VaultError> {
        let idempotent = method == Method::GET || method.as_str() == "LIST";
        let attempts = if idempotent { RETRIES } else { 0 };
        let outcome = (|| async {
            let answer = self
                .call_once(method.clone(), path, token, body.clone())
                .await
                .map_err(Attempt::Failed)?;
            if TRANSIENT.contains(&answer.status.as_u16()) {
                return Err(Attempt::Transient(answer));
            }
            Ok(answer)
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_times(attempts)
                .with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(|attempt| {
            matches!(
                attempt,
                Attempt::Transient(_)
                    | Attempt::Failed(VaultError::Transport {
                        tls_refused: false,
                        ..
                    })
            )
        })
        .notify(|attempt, delay| {
            tracing::debug!(%method, path, ?delay, reason = attempt.reason(), "retrying a Vault read");
        })
        .await;
        match outcome {
            Ok(answer) | Err(Attempt::Transient(answer)) => Ok(answer),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Answer, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_HEADER, HeaderValue::from_static("true"));
        if let Some(namespace) = &self.namespace {
            let value = HeaderValue::from_str(namespace)
                .map_err(|_| VaultError::Config(format!("invalid namespace `{namespace}`")))?;
            headers.insert(NAMESPACE_HEADER, value);
        }
        if let Some(token) = token {
            headers.insert(TOKEN_HEADER, token_header(token)?);
        }
        let mut request = self.client.request(method.clone(), &url).headers(headers);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let transport = |error: reqwest::Error| VaultError::Transport {
            address: self.address.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            reason: chain_text(&error),
            tls_refused: is_tls_refusal(&error),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = Zeroizing::new(response.bytes().await.map_err(transport)?.to_vec());
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes).map_err(|error| VaultError::Answer {
                    address: self.address.clone(),
                    method: method.to_string(),
                    path: path.to_owned(),
                    reason: format!("{status} with a body that is not JSON ({error})"),
                })?,
            )
        };
        Ok(Answer { status, body })
    }

    /// The error for an answer the caller did not expect.
    pub fn failure(&self, method: &Method, path: &str, answer: &Answer) -> VaultError {
        let errors = answer
            .body
            .as_ref()
            .and_then(|body| body.get("errors"))
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|errors| !errors.is_empty())
            .unwrap_or_else(|| "no error message".to_owned());
        VaultError::Status {
            address: self.address.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            status: answer.status.as_u16(),
            errors,
        }
    }

    pub fn unexpected(&self, method: &Method, path: &str, reason: &str) -> VaultError {
        VaultError::Answer {
            address: self.address.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// The token as a header value, marked sensitive. Whitespace was trimmed
/// when the token was read; a token that still cannot be a header value is
/// refused with a message that does not repeat it.
fn token_header(token: &SecretString) -> Result<HeaderValue, VaultError> {
    let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
        VaultError::Config("the Vault token holds characters a token cannot have".to_owned())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A token as read from a file or the environment: surrounding whitespace
/// and newlines removed (vaultrs panics on a trailing newline; kiln trims).
pub fn clean_token(raw: &SecretString) -> SecretString {
    SecretString::from(raw.expose_secret().trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_their_header_is_sensitive() {
        let token = clean_token(&SecretString::from("  s.abc123\n"));
        assert_eq!(token.expose_secret(), "s.abc123");
        let header = token_header(&token).unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("abc123"));
    }

    /// A loopback HTTP server answering 503 to the first `failures`
    /// requests and 200 after; returns its address and a request counter.
    async fn flaky_server(
        failures: usize,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}"
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (address, count)
    }

    #[tokio::test]
    async fn reads_are_retried_through_a_brief_outage_and_writes_are_not() {
        use std::sync::atomic::Ordering;
        let (address, count) = flaky_server(2).await;
        let http = Http::new(&address, None, TlsTrust::PlainLoopback).unwrap();
        let answer = http
            .call(Method::GET, "sys/health", None, None)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(count.load(Ordering::SeqCst), 3);

        let (address, count) = flaky_server(1).await;
        let http = Http::new(&address, None, TlsTrust::PlainLoopback).unwrap();
        let body = Some(Zeroizing::new(b"{}".to_vec()));
        let answer = http
            .call(Method::POST, "secret/data/x", None, body)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_token_with_a_newline_inside_is_refused_without_echo() {
        let error = token_header(&SecretString::from("s.ab\ncd"))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("s.ab"), "{error}");
    }
}
