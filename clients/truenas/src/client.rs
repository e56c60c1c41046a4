//! The client: its settings, one authenticated connection kept open and
//! reopened when it drops, and the rules for what may be sent again.
//!
//! - Every await on the network is bounded (connect, each call, each job).
//! - `-32000` ("too many calls in flight") is retried with bounded backoff:
//!   the server refused the call, so resending is always safe.
//! - A dropped socket is reopened (and logged in again) once per call. A
//!   call that only reads is then resent; a call that changes state and was
//!   already sent is not — it may have been carried out — and the error
//!   ([`Error::ReplyLost`]) says so.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

use crate::auth::{LoginTarget, login};
use crate::endpoint::{BaseEndpoint, choose_version, fetch_versions, tls_config};
use crate::error::{Error, Result};
use crate::rpc::{RpcConnection, RpcFailure};
use crate::wire::{TOO_MANY_CALLS, classify};

/// Bounded exponential backoff with jitter for `-32000` answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_times: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_times: 8,
        }
    }
}

/// Everything needed to talk to one NAS.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://nas.lan[:port]`, as the inventory names the NAS.
    pub endpoint: String,
    /// `<id>-<key>`; Debug shows `[REDACTED]`.
    pub api_key: SecretString,
    /// The user the key belongs to: enables `auth.login_ex`, whose answer
    /// tells a refused key from an expired or revoked one.
    pub username: Option<String>,
    pub trust: kiln_tls::Trust,
    /// Bound on `GET /api/versions`, and on TCP + TLS + WebSocket handshake.
    pub connect_timeout: Duration,
    /// Bound on one call's answer.
    pub call_timeout: Duration,
    /// Bound on waiting for a job (e.g. starting a service).
    pub job_timeout: Duration,
    /// Longest pause between two looks at a job's state.
    pub job_poll_interval: Duration,
    /// Calls in flight on the connection. The server accepts 20 and
    /// answers `-32000` beyond; staying below keeps retries rare.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, api_key: SecretString, trust: kiln_tls::Trust) -> Self {
        Self {
            endpoint: endpoint.into(),
            api_key,
            username: None,
            trust,
            connect_timeout: Duration::from_secs(15),
            call_timeout: Duration::from_secs(60),
            job_timeout: Duration::from_secs(300),
            job_poll_interval: Duration::from_secs(1),
            max_in_flight: 16,
            retry: RetryPolicy::default(),
        }
    }
}

/// Whether resending a call whose answer was lost is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Reads,
    Changes,
}

struct Session {
    rpc: Arc<RpcConnection>,
}

struct Inner {
    config: ClientConfig,
    base: BaseEndpoint,
    tls: Arc<rustls::ClientConfig>,
    api_version: String,
    session: Mutex<Option<Session>>,
    in_flight: Semaphore,
}

/// A TrueNAS API client over one JSON-RPC WebSocket. Cheap to clone; clones
/// share the connection.
#[derive(Clone)]
pub struct TruenasClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for TruenasClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TruenasClient")
            .field("endpoint", &self.inner.base.display)
            .field("api_version", &self.inner.api_version)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl TruenasClient {
    /// Chooses the API version (`GET /api/versions`), opens the WebSocket
    /// and logs in: a wrong pin or key fails here, not at the first call.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        let base = BaseEndpoint::parse(&config.endpoint)?;
        let tls = tls_config(&config.trust)?;
        let offered = fetch_versions(&base, tls.clone(), config.connect_timeout).await?;
        let api_version = choose_version(&offered);
        tracing::debug!(endpoint = %base.display, %api_version, "TrueNAS API version");
        let in_flight = Semaphore::new(config.max_in_flight.max(1));
        let client = Self {
            inner: Arc::new(Inner {
                config,
                base,
                tls,
                api_version,
                session: Mutex::new(None),
                in_flight,
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The base endpoint, as errors name it.
    pub fn endpoint(&self) -> &str {
        &self.inner.base.display
    }

    /// The API path in use: `v25.10.5` when the NAS lists it, else `current`.
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The open connection, or a new one (connected and logged in).
    async fn connection(&self) -> Result<Arc<RpcConnection>> {
        let mut session = self.inner.session.lock().await;
        if let Some(current) = session.as_ref()
            && !current.rpc.is_closed()
        {
            return Ok(current.rpc.clone());
        }
        let rpc = Arc::new(self.open().await?);
        *session = Some(Session { rpc: rpc.clone() });
        Ok(rpc)
    }

    async fn open(&self) -> Result<RpcConnection> {
        let inner = &self.inner;
        let url = inner.base.websocket_url(&inner.api_version);
        let rpc = tokio::time::timeout(
            inner.config.connect_timeout,
            RpcConnection::open(&url, inner.tls.clone()),
        )
        .await
        .map_err(|_| Error::Timeout {
            endpoint: inner.base.display.clone(),
            method: format!("WebSocket handshake with {url}"),
            after: inner.config.connect_timeout,
            mutating: false,
        })?
        .map_err(|detail| Error::Transport {
            endpoint: inner.base.display.clone(),
            step: format!("WebSocket handshake with {url}"),
            detail,
        })?;
        let target = LoginTarget {
            rpc: &rpc,
            endpoint: &inner.base.display,
            api_version: &inner.api_version,
            timeout: inner.config.call_timeout,
        };
        login(
            &target,
            &inner.config.api_key,
            inner.config.username.as_deref(),
        )
        .await?;
        // Job updates wake job waiters early; without them they poll.
        let subscribe = rpc
            .call(
                "core.subscribe",
                &json!(["core.get_jobs"]),
                inner.config.call_timeout,
            )
            .await;
        if let Err(failure) = subscribe {
            tracing::debug!(?failure, "no job subscription; job waits will poll");
        }
        Ok(rpc)
    }

    /// Job-update receiver of the current connection.
    pub(crate) async fn job_updates(&self) -> Result<tokio::sync::broadcast::Receiver<u64>> {
        Ok(self.connection().await?.job_updates())
    }

    /// One call decoded as `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        effect: Effect,
    ) -> Result<T> {
        let value = self.call_value(method, params, effect).await?;
        serde_json::from_value(value).map_err(|e| Error::Decode {
            endpoint: self.inner.base.display.clone(),
            method: method.to_owned(),
            reason: e.to_string(),
        })
    }

    /// One call: a reconnect at most once, `-32000` retried with backoff.
    pub(crate) async fn call_value(
        &self,
        method: &str,
        params: Value,
        effect: Effect,
    ) -> Result<Value> {
        let _slot = self
            .inner
            .in_flight
            .acquire()
            .await
            .map_err(|_| Error::Config("the client is shutting down".to_owned()))?;
        let mut may_reconnect = true;
        loop {
            let rpc = self.connection().await?;
            let failure = match self.call_retrying_busy(&rpc, method, &params).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match failure {
                RpcFailure::NotSent(_) if may_reconnect => {}
                RpcFailure::Lost(_) if may_reconnect && effect == Effect::Reads => {}
                other => return Err(self.classify(method, effect, other)),
            }
            tracing::debug!(method, "TrueNAS connection dropped; reconnecting once");
            may_reconnect = false;
        }
    }

    async fn call_retrying_busy(
        &self,
        rpc: &RpcConnection,
        method: &str,
        params: &Value,
    ) -> std::result::Result<Value, RpcFailure> {
        let policy = self.inner.config.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_times)
            .with_jitter();
        (|| rpc.call(method, params, self.inner.config.call_timeout))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|failure| matches!(failure, RpcFailure::Remote(e) if e.code == TOO_MANY_CALLS))
            .notify(|_, after| tracing::debug!(method, ?after, "TrueNAS busy (-32000); retrying"))
            .await
    }

    fn classify(&self, method: &str, effect: Effect, failure: RpcFailure) -> Error {
        let endpoint = self.inner.base.display.clone();
        match failure {
            RpcFailure::Remote(error) if error.code == TOO_MANY_CALLS => Error::TooManyCalls {
                endpoint,
                method: method.to_owned(),
                attempts: self.inner.config.retry.max_times + 1,
            },
            RpcFailure::Remote(error) => {
                classify(&endpoint, &self.inner.api_version, method, error)
            }
            RpcFailure::Lost(detail) if effect == Effect::Changes => Error::ReplyLost {
                endpoint,
                method: method.to_owned(),
                detail,
            },
            RpcFailure::Lost(detail) | RpcFailure::NotSent(detail) => Error::Transport {
                endpoint,
                step: method.to_owned(),
                detail,
            },
            RpcFailure::TimedOut(after) => Error::Timeout {
                endpoint,
                method: method.to_owned(),
                after,
                mutating: effect == Effect::Changes,
            },
            RpcFailure::TooLarge(bytes) => Error::Config(format!(
                "{method}: the request is {bytes} bytes; TrueNAS accepts at most {} per message",
                crate::rpc::MAX_OUTGOING_MESSAGE
            )),
        }
    }
}
