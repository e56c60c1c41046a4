//! Authentication: API token header, or ticket + CSRF token renewed
//! before PVE's 2 h ticket lifetime ends.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::wire::{api_error, decode, endpoint, exchange, parse_data};

/// How kiln authenticates to PVE.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: PVEAPIToken=<id>=<secret>`; `id` is `user@realm!name`.
    Token { id: String, secret: SecretString },
    /// `POST /access/ticket`, then cookie + CSRF header; renewed before the
    /// ticket's 2 h lifetime runs out.
    Password {
        username: String,
        password: SecretString,
    },
}

impl Auth {
    /// Parses `user@realm!tokenid=secret` (the `KILN_PROXMOX_TOKEN` form),
    /// splitting on the last `=` as PVE does.
    pub fn token_from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (id, secret) = s.rsplit_once('=').ok_or_else(|| {
            Error::Config("API token must look like user@realm!name=secret".into())
        })?;
        let valid_id = id
            .split_once('!')
            .is_some_and(|(user, name)| user.contains('@') && !name.is_empty());
        if !valid_id || secret.is_empty() {
            return Err(Error::Config(
                "API token must look like user@realm!name=secret".into(),
            ));
        }
        Ok(Auth::Token {
            id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        })
    }
}

/// PVE tickets live 2 h; renewing later than this risks a 401 mid-run.
const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

pub(crate) struct Ticket {
    cookie: HeaderValue,
    csrf: HeaderValue,
    obtained: Instant,
}

pub(crate) enum AuthState {
    Token(HeaderValue),
    Password {
        username: String,
        password: SecretString,
        ticket: tokio::sync::Mutex<Option<Ticket>>,
    },
}

pub(crate) fn sensitive(value: String) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        Error::Config("credential contains characters not allowed in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

#[derive(Deserialize)]
struct TicketData {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken")]
    csrf: String,
}

/// What a ticket login needs of the client: its connections, where PVE's
/// API is, how long one request may take, and when a ticket is too old.
pub(crate) struct LoginContext<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a str,
    pub request_timeout: Duration,
    pub renew_after: Duration,
}

impl AuthState {
    /// Forgets the ticket, so the next request logs in again; false for a
    /// token, which has no ticket to renew.
    pub(crate) async fn drop_ticket(&self) -> bool {
        match self {
            AuthState::Token(_) => false,
            AuthState::Password { ticket, .. } => ticket.lock().await.take().is_some(),
        }
    }

    /// The headers that authenticate one request, logging in first when
    /// there is no ticket or it is due for renewal.
    pub(crate) async fn headers(
        &self,
        method: &Method,
        target: &Target,
        context: LoginContext<'_>,
    ) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        match self {
            AuthState::Token(v) => {
                h.insert(reqwest::header::AUTHORIZATION, v.clone());
            }
            AuthState::Password {
                username,
                password,
                ticket,
            } => {
                // Never later than 10 minutes before PVE drops the ticket.
                let renew_after = context
                    .renew_after
                    .min(TICKET_LIFETIME - Duration::from_secs(600));
                let mut slot = ticket.lock().await;
                let fresh = slot
                    .as_ref()
                    .is_some_and(|t| t.obtained.elapsed() < renew_after);
                if !fresh {
                    *slot = Some(login(&context, username, password, target).await?);
                }
                if let Some(t) = slot.as_ref() {
                    h.insert(reqwest::header::COOKIE, t.cookie.clone());
                    // PVE checks CSRF on every non-GET request made with a ticket.
                    if method != Method::GET {
                        h.insert("CSRFPreventionToken", t.csrf.clone());
                    }
                }
            }
        }
        Ok(h)
    }
}

async fn login(
    context: &LoginContext<'_>,
    username: &str,
    password: &SecretString,
    target: &Target,
) -> Result<Ticket> {
    let ep = endpoint(&Method::POST, "/access/ticket");
    let form = Params::new()
        .set("username", username)
        .secret("password", password.clone());
    let request = context
        .http
        .post(format!("{}/access/ticket", context.base))
        .form(&form);
    let (status, reason, bytes) = exchange(request, context.request_timeout, &ep, target).await?;
    if !status.is_success() {
        return Err(api_error(ep, target, status, reason, &bytes));
    }
    let data: TicketData = decode(parse_data(&bytes, &ep, target)?, &ep, target)?;
    Ok(Ticket {
        cookie: sensitive(format!("PVEAuthCookie={}", data.ticket))?,
        csrf: sensitive(data.csrf)?,
        obtained: Instant::now(),
    })
}
