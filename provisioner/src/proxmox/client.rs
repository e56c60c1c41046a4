//! Transport and authentication: one reqwest client over the kiln-tls
//! config, API-token or ticket auth, per-request timeouts, PVE error
//! parsing and bounded retries.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::{Auth, AuthState, sensitive};
use super::error::{Endpoint, Error, Result, Target};
use super::limits::{Limits, LimitsConfig};
use super::params::Params;
use super::vm::VmidBook;

/// Bounded exponential backoff with jitter for retryable errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_times: usize,
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_times: 6,
            max_total: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_times)
            .with_total_delay(Some(self.max_total))
            .with_jitter()
    }
}

/// Everything needed to talk to one PVE cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:8006` (a trailing `/api2/json` is accepted).
    pub endpoint: String,
    pub auth: Auth,
    pub trust: kiln_tls::Trust,
    /// Bound on each HTTP exchange (connect, send, read the body).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Bound on one upload (large images take a while).
    pub upload_timeout: Duration,
    /// Default bound on waiting for a task.
    pub task_timeout: Duration,
    /// Longest pause between two task-status polls.
    pub task_poll_max: Duration,
    /// Longest pause between two polls of a booting VM's guest agent.
    pub agent_poll_max: Duration,
    /// How long `400 upid: no such task` counts as "not visible yet" right
    /// after a task was created, before it is taken as an error.
    pub task_not_found_grace: Duration,
    /// Ticket auth: log in again after this long (default 1 h, the
    /// proxmoxer choice; capped well below PVE's 2 h ticket lifetime).
    pub ticket_renew_after: Duration,
    pub retry: RetryPolicy,
    pub limits: LimitsConfig,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, auth: Auth, trust: kiln_tls::Trust) -> Self {
        Self {
            endpoint: endpoint.into(),
            auth,
            trust,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            upload_timeout: Duration::from_secs(3600),
            task_timeout: Duration::from_secs(600),
            task_poll_max: Duration::from_secs(2),
            agent_poll_max: Duration::from_secs(2),
            ticket_renew_after: Duration::from_secs(3600),
            task_not_found_grace: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            limits: LimitsConfig::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) config: ClientConfig,
    pub(crate) auth: AuthState,
    pub(crate) limits: Limits,
    pub(crate) vmids: VmidBook,
}

/// The Proxmox VE API client. Cheap to clone; clones share connections,
/// the ticket, the VMID reservations and the concurrency limits.
#[derive(Clone)]
pub struct ProxmoxClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for ProxmoxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxmoxClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<BTreeMap<String, Value>>,
}

/// Percent-encodes one path segment (volume ids and UPIDs hold `:` and `/`).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%2E", ".")
}

pub(crate) enum Body {
    Params(Params),
    Multipart(Box<dyn Fn() -> Result<reqwest::multipart::Form> + Send + Sync>),
}

impl ProxmoxClient {
    pub fn new(config: ClientConfig) -> Result<Self> {
        let tls = config
            .trust
            .client_config()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {}", chain(&e))))?;
        let endpoint = config.endpoint.trim_end_matches('/');
        let endpoint = endpoint.strip_suffix("/api2/json").unwrap_or(endpoint);
        if !endpoint.starts_with("https://") {
            return Err(Error::Config(format!(
                "endpoint {endpoint:?} must start with https://"
            )));
        }
        let base = format!("{endpoint}/api2/json");
        let auth = match &config.auth {
            Auth::Token { id, secret } => AuthState::Token(sensitive(format!(
                "PVEAPIToken={id}={}",
                secret.expose_secret()
            ))?),
            Auth::Password { username, password } => AuthState::Password {
                username: username.clone(),
                password: password.clone(),
                ticket: tokio::sync::Mutex::new(None),
            },
        };
        let limits = Limits::new(config.limits);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                config,
                auth,
                limits,
                vmids: VmidBook::default(),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// GET, decoding `data` as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
        target: &Target,
    ) -> Result<T> {
        self.call(Method::GET, path, Body::Params(params), target)
            .await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
        target: &Target,
    ) -> Result<T> {
        self.call(Method::POST, path, Body::Params(params), target)
            .await
    }

    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        params: Params,
        target: &Target,
    ) -> Result<T> {
        self.call(Method::PUT, path, Body::Params(params), target)
            .await
    }

    /// One API call with bounded retries for retryable errors only.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
        target: &Target,
    ) -> Result<T> {
        let value = (|| self.call_once(method.clone(), path, &body, target))
            .retry(self.inner.config.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(Error::is_retryable)
            .notify(|e, after| tracing::debug!(error = %e, ?after, "retrying Proxmox call"))
            .await?;
        decode(value, &endpoint(&method, path), target)
    }

    /// One HTTP exchange, no retries; answers the `data` member.
    pub(crate) async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: &Body,
        target: &Target,
    ) -> Result<Value> {
        let ep = endpoint(&method, path);
        let mut renewed = false;
        loop {
            let headers = self.auth_headers(&method, target).await?;
            let timeout = match body {
                Body::Multipart(_) => self.inner.config.upload_timeout,
                Body::Params(_) => self.inner.config.request_timeout,
            };
            let url = format!("{}{}", self.inner.base, path);
            let mut req = self
                .inner
                .http
                .request(method.clone(), url)
                .headers(headers);
            req = match body {
                Body::Params(p) if method == Method::GET || method == Method::DELETE => {
                    req.query(p)
                }
                Body::Params(p) => req.form(p),
                Body::Multipart(make) => req.multipart(make()?),
            };
            let exchange = async {
                let resp = req.send().await?;
                let status = resp.status();
                let reason = reason_phrase(&resp);
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, reason, bytes))
            };
            let (status, reason, bytes) = match tokio::time::timeout(timeout, exchange).await {
                Err(_) => {
                    return Err(Error::Timeout {
                        endpoint: ep,
                        target: target.clone(),
                        after: timeout,
                    });
                }
                Ok(Err(e)) => return Err(transport(ep, target, &e)),
                Ok(Ok(v)) => v,
            };
            if status.is_success() {
                return parse_data(&bytes, &ep, target);
            }
            // A 401 with a ticket may mean the server restarted or the
            // ticket was revoked: log in once more before giving up.
            if status.as_u16() == 401 && !renewed && self.drop_ticket().await {
                renewed = true;
                continue;
            }
            return Err(api_error(ep, target, status, reason, &bytes));
        }
    }
}

pub(crate) fn endpoint(method: &Method, path: &str) -> Endpoint {
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    Endpoint {
        method,
        path: path.to_owned(),
    }
}

pub(crate) fn reason_phrase(resp: &Response) -> Option<String> {
    resp.extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).trim().to_owned())
        .filter(|r| !r.is_empty())
}

pub(crate) fn parse_data(bytes: &[u8], ep: &Endpoint, target: &Target) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        endpoint: ep.clone(),
        target: target.clone(),
        reason: format!("body is not JSON: {e}"),
    })?;
    Ok(v.get_mut("data").map(Value::take).unwrap_or(Value::Null))
}

pub(crate) fn decode<T: DeserializeOwned>(v: Value, ep: &Endpoint, target: &Target) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Decode {
        endpoint: ep.clone(),
        target: target.clone(),
        reason: e.to_string(),
    })
}

/// Reason phrase first (it carries the message on every PVE version), then
/// the body's `message` (PVE ≥ 8.3), then the status text; `errors{}` kept.
pub(crate) fn api_error(
    endpoint: Endpoint,
    target: &Target,
    status: reqwest::StatusCode,
    reason: Option<String>,
    body: &[u8],
) -> Error {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let body_message = parsed
        .as_ref()
        .and_then(|b| b.message.as_deref())
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty());
    let message = reason
        .or(body_message)
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_else(|| "unknown error".to_owned());
    let errors = parsed
        .and_then(|b| b.errors)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    Error::Api {
        endpoint,
        target: target.clone(),
        status: status.as_u16(),
        message,
        errors,
    }
}

/// The whole error chain as one line; io errors wrapping rustls errors are
/// unwrapped so a pin mismatch shows both fingerprints.
pub(crate) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Texts rustls uses for a failed handshake. Matching text as well as types
/// is needed because hyper-util boxes the connector error, which defeats
/// `downcast_ref` on the way down the chain.
const TLS_FAILURE_TEXT: &[&str] = &[
    "invalid peer certificate",
    "peer is incompatible",
    "peer misbehaved",
    "received fatal alert",
];

fn is_tls_rejection(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cur = err.source();
    }
    let text = chain(e);
    TLS_FAILURE_TEXT.iter().any(|t| text.contains(t))
}

pub(crate) fn transport(endpoint: Endpoint, target: &Target, e: &reqwest::Error) -> Error {
    let tls = is_tls_rejection(e);
    let full = chain(e);
    // rustls wraps a pin mismatch in `Other(OtherError(..))`; show the
    // mismatch itself, both fingerprints, rather than that wrapping.
    let detail = match full.find("certificate fingerprint mismatch") {
        Some(start) => {
            let rest = &full[start..];
            let end = rest.find(')').unwrap_or(rest.len());
            format!("TLS: {} (connecting to {})", &rest[..end], url_of(e))
        }
        None if full.contains("UnknownIssuer") => format!(
            "{full} (the certificate is not signed by a trusted CA; a self-signed PVE \
             needs its SHA-256 fingerprint pinned)"
        ),
        None => full,
    };
    Error::Transport {
        endpoint,
        target: target.clone(),
        detail,
        retryable: !tls && !e.is_builder(),
    }
}

fn url_of(e: &reqwest::Error) -> String {
    e.url()
        .map(|u| {
            u.host_str().unwrap_or_default().to_owned()
                + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
        })
        .unwrap_or_else(|| "the server".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const SECRET: &str = "5f1c9a3e-secret-value-7b2d";

    fn pin() -> kiln_tls::Trust {
        kiln_tls::Trust::Pin(kiln_tls::Fingerprint::from_bytes([7; 32]))
    }

    #[test]
    fn debug_never_shows_secrets() {
        let token = Auth::token_from_str(&format!("kiln@pve!prov={SECRET}")).unwrap();
        let password = Auth::Password {
            username: "kiln@pve".into(),
            password: SecretString::from(SECRET.to_owned()),
        };
        for auth in [token, password] {
            let config = ClientConfig::new("https://127.0.0.1:8006", auth, pin());
            let client = ProxmoxClient::new(config.clone()).unwrap();
            for text in [
                format!("{config:?}"),
                format!("{client:?}"),
                format!("{client:#?}"),
            ] {
                assert!(!text.contains(SECRET), "secret in Debug output: {text}");
                assert!(text.contains("kiln@pve"), "{text}");
            }
        }
    }

    #[test]
    fn token_parsing_splits_on_last_equals() {
        let Auth::Token { id, secret } = Auth::token_from_str(" root@pam!a=b=c\n").unwrap() else {
            panic!("not a token");
        };
        assert_eq!(id, "root@pam!a=b");
        assert_eq!(secret.expose_secret(), "c");
        for bad in [
            "",
            "root@pam=x",
            "root@pam!=x",
            "rootpam!id=x",
            "root@pam!id=",
        ] {
            assert!(Auth::token_from_str(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn endpoint_must_be_https() {
        let auth = Auth::token_from_str("a@pve!t=s").unwrap();
        let err = ProxmoxClient::new(ClientConfig::new("http://127.0.0.1:8006", auth, pin()))
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("local:iso/x y.iso"), "local%3Aiso%2Fx%20y.iso");
        assert_eq!(seg("pve-1_a.b"), "pve-1_a.b");
    }
}
