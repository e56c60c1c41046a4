//! The client: one reqwest client over the kiln-tls config, its settings,
//! authentication on every request, and bounded retries of what the wire
//! classifies as retryable.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, AuthState, LoginContext, sensitive};
use crate::error::{Error, Result, Target};
use crate::limits::{Limits, LimitsConfig};
use crate::params::Params;
use crate::vmids::VmidBook;
use crate::wire::{Body, api_error, chain, decode, endpoint, exchange, parse_data};

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
    fn login_context(&self) -> LoginContext<'_> {
        LoginContext {
            http: &self.inner.http,
            base: &self.inner.base,
            request_timeout: self.inner.config.request_timeout,
            renew_after: self.inner.config.ticket_renew_after,
        }
    }

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
            let headers = self
                .inner
                .auth
                .headers(&method, target, self.login_context())
                .await?;
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
            let (status, reason, bytes) = exchange(req, timeout, &ep, target).await?;
            if status.is_success() {
                return parse_data(&bytes, &ep, target);
            }
            // A 401 with a ticket may mean the server restarted or the
            // ticket was revoked: log in once more before giving up.
            if status.as_u16() == 401 && !renewed && self.inner.auth.drop_ticket().await {
                renewed = true;
                continue;
            }
            return Err(api_error(ep, target, status, reason, &bytes));
        }
    }
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
}
