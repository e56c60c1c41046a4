//! Logging in to Vault and staying logged in for a long run: a token as
//! given, or AppRole (role id + secret id). A background task renews the
//! token at about two thirds of its TTL; when it cannot be renewed any more
//! (not renewable, or its max TTL is near) AppRole logs in again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use super::error::VaultError;
use super::http::Http;

/// How kiln proves who it is. Debug never shows a value.
pub enum Credentials {
    Token(SecretString),
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: SecretString,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("Token([REDACTED])"),
            Self::AppRole { mount, .. } => write!(f, "AppRole {{ mount: {mount:?}, .. }}"),
        }
    }
}

impl Credentials {
    fn method(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "approle",
        }
    }
}

/// A token and what Vault said about its lifetime.
struct Lease {
    token: SecretString,
    /// Zero: the token never expires (root tokens, for instance).
    ttl: Duration,
    renewable: bool,
}

/// The logged-in state shared by the store and its renewal task.
pub struct Session {
    http: Arc<Http>,
    credentials: Credentials,
    token: RwLock<Option<SecretString>>,
    renewer: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    renewals: AtomicU64,
    logins: AtomicU64,
}

impl Session {
    pub fn new(http: Arc<Http>, credentials: Credentials) -> Arc<Self> {
        Arc::new(Self {
            http,
            credentials,
            token: RwLock::new(None),
            renewer: std::sync::Mutex::new(None),
            renewals: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        })
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// How often the token was renewed and how often kiln logged in; for
    /// `kiln secrets` output and for tests of long runs.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.renewals.load(Ordering::Relaxed),
            self.logins.load(Ordering::Relaxed),
        )
    }

    /// The current token, logging in first when there is none yet.
    pub async fn token(self: &Arc<Self>) -> Result<SecretString, VaultError> {
        if let Some(token) = self.token.read().await.as_ref() {
            return Ok(token.clone());
        }
        let mut slot = self.token.write().await;
        if let Some(token) = slot.as_ref() {
            return Ok(token.clone());
        }
        let lease = self.login().await?;
        *slot = Some(lease.token.clone());
        drop(slot);
        self.start_renewer(lease.ttl, lease.renewable);
        Ok(lease.token)
    }

    /// Whether Vault still knows `token` (a 403 may mean an expired token
    /// or a policy that forbids the path; only the first is fixed by a new
    /// login).
    pub async fn is_alive(&self, token: &SecretString) -> bool {
        self.lookup(token).await.is_ok()
    }

    /// Forgets a token Vault refused, so the next call logs in again.
    /// Only AppRole can recover this way; a given token cannot be replaced.
    pub async fn invalidate(&self) -> bool {
        if matches!(self.credentials, Credentials::AppRole { .. }) {
            *self.token.write().await = None;
            true
        } else {
            false
        }
    }

    async fn login(&self) -> Result<Lease, VaultError> {
        let lease = match &self.credentials {
            Credentials::Token(token) => self.lookup(token).await?,
            Credentials::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let body = Zeroizing::new(
                    json!({
                        "role_id": role_id.expose_secret(),
                        "secret_id": secret_id.expose_secret(),
                    })
                    .to_string()
                    .into_bytes(),
                );
                let path = format!("auth/{mount}/login");
                let answer = self
                    .http
                    .call(Method::POST, &path, None, Some(body))
                    .await?;
                if !answer.status.is_success() {
                    let error = self.http.failure(&Method::POST, &path, &answer);
                    return Err(self.login_error(error.errors().to_owned()));
                }
                self.lease_from_auth(answer.body.as_ref())?
            }
        };
        self.logins.fetch_add(1, Ordering::Relaxed);
        Ok(lease)
    }

    async fn lookup(&self, token: &SecretString) -> Result<Lease, VaultError> {
        let path = "auth/token/lookup-self";
        let answer = self.http.call(Method::GET, path, Some(token), None).await?;
        if !answer.status.is_success() {
            let error = self.http.failure(&Method::GET, path, &answer);
            return Err(self.login_error(format!("the token was refused: {}", error.errors())));
        }
        let data = answer.body.as_ref().and_then(|body| body.get("data"));
        let ttl = data.and_then(|data| data["ttl"].as_u64()).unwrap_or(0);
        let renewable = data
            .and_then(|data| data["renewable"].as_bool())
            .unwrap_or(false);
        Ok(Lease {
            token: token.clone(),
            ttl: Duration::from_secs(ttl),
            renewable,
        })
    }

    fn lease_from_auth(&self, body: Option<&Value>) -> Result<Lease, VaultError> {
        let auth = body
            .and_then(|body| body.get("auth"))
            .filter(|auth| !auth.is_null())
            .ok_or_else(|| self.login_error("the answer has no `auth` block".to_owned()))?;
        let token = auth["client_token"]
            .as_str()
            .ok_or_else(|| self.login_error("the answer has no client token".to_owned()))?;
        Ok(Lease {
            token: SecretString::from(token),
            ttl: Duration::from_secs(auth["lease_duration"].as_u64().unwrap_or(0)),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        })
    }

    fn login_error(&self, reason: String) -> VaultError {
        VaultError::Login {
            method: self.credentials.method(),
            address: self.http.address().to_owned(),
            reason,
        }
    }

    fn start_renewer(self: &Arc<Self>, ttl: Duration, renewable: bool) {
        if ttl.is_zero() {
            return;
        }
        // The task holds a weak reference: dropping the store ends it.
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut ttl = ttl;
            let mut renewable = renewable;
            loop {
                // ttl / 3 * 2 cannot overflow, whatever TTL Vault sends.
                tokio::time::sleep(ttl / 3 * 2).await;
                let Some(session) = weak.upgrade() else {
                    return;
                };
                match session.refresh(ttl, renewable).await {
                    Some(lease) => {
                        ttl = lease.ttl;
                        renewable = lease.renewable;
                        if ttl.is_zero() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        });
        if let Ok(mut slot) = self.renewer.lock()
            && let Some(previous) = slot.replace(task.abort_handle())
        {
            previous.abort();
        }
    }

    /// One renewal step: renew when possible and worthwhile, else log in
    /// again with AppRole. `None` ends the renewal task.
    async fn refresh(&self, previous_ttl: Duration, renewable: bool) -> Option<Lease> {
        let current = self.token.read().await.clone()?;
        if renewable {
            match self.renew(&current).await {
                // A renewal that grants less than a third of the previous
                // TTL means the max TTL is near: treat it as not renewable.
                Ok(lease) if lease.ttl >= previous_ttl / 3 => {
                    self.renewals.fetch_add(1, Ordering::Relaxed);
                    *self.token.write().await = Some(lease.token.clone());
                    return Some(lease);
                }
                Ok(_) => {}
                // Vault briefly unreachable: try again well before expiry
                // rather than give the token up.
                Err(error @ VaultError::Transport { .. })
                    if matches!(self.credentials, Credentials::Token(_)) =>
                {
                    tracing::warn!(%error, "Vault token renewal failed; retrying soon");
                    return Some(Lease {
                        token: current,
                        ttl: (previous_ttl / 2).max(Duration::from_secs(3)),
                        renewable,
                    });
                }
                Err(error) => tracing::warn!(%error, "Vault token renewal failed"),
            }
        }
        if matches!(self.credentials, Credentials::AppRole { .. }) {
            match self.login().await {
                Ok(lease) => {
                    *self.token.write().await = Some(lease.token.clone());
                    return Some(lease);
                }
                Err(error) => {
                    tracing::error!(%error, "Vault AppRole login to replace an expiring token failed");
                    return None;
                }
            }
        }
        tracing::warn!(
            "the Vault token cannot be renewed and will expire; use AppRole for runs longer than its TTL"
        );
        None
    }

    async fn renew(&self, token: &SecretString) -> Result<Lease, VaultError> {
        let path = "auth/token/renew-self";
        let answer = self
            .http
            .call(
                Method::POST,
                path,
                Some(token),
                Some(Zeroizing::new(b"{}".to_vec())),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.http.failure(&Method::POST, path, &answer));
        }
        let mut lease = self.lease_from_auth(answer.body.as_ref())?;
        // renew-self answers with the same token; keep the one we have.
        lease.token = token.clone();
        Ok(lease)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.renewer.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}
