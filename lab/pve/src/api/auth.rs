//! API-token and ticket authentication like pve-http-server and pve-access-control:
//! `Authorization: PVEAPIToken=user@realm!id=secret` (no CSRF check), or the
//! `PVEAuthCookie` ticket with a `CSRFPreventionToken` header on every non-GET request
//! except upload.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::{Value, json};

use super::reply::ApiError;

/// PVE's `$ticket_lifetime`.
const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// The lab's one user and its API token.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// `user@realm`.
    pub(crate) user: String,
    pub(crate) password: String,
    /// `user@realm!name`.
    pub(crate) token_id: String,
    pub(crate) token_secret: String,
}

/// Who sent a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: String,
    /// The token name when an API token was used.
    pub(crate) token: Option<String>,
}

impl Caller {
    /// The user field of a UPID: `user@realm` or `user@realm!token`.
    pub(crate) fn upid_user(&self) -> String {
        match &self.token {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }
}

struct Ticket {
    user: String,
    csrf: String,
    issued: Instant,
}

pub(crate) struct Auth {
    creds: Credentials,
    tickets: Mutex<HashMap<String, Ticket>>,
    rng: Mutex<ChaCha20Rng>,
}

/// Random text for secrets, tickets and CSRF tokens (not from the fault seed: secrets must
/// not be predictable from a faults file).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// A PVE-style token secret: a UUID-shaped random string.
pub(crate) fn random_uuid() -> String {
    let b: [u8; 16] = random_bytes();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Auth {
    pub(crate) fn new(creds: Credentials) -> Self {
        Self {
            creds,
            tickets: Mutex::new(HashMap::new()),
            rng: Mutex::new(ChaCha20Rng::from_os_rng()),
        }
    }

    fn random_text(&self, len: usize) -> String {
        let mut bytes = vec![0u8; len];
        if let Ok(mut rng) = self.rng.lock() {
            rng.fill_bytes(&mut bytes);
        }
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    /// Checks the credentials of a request. `csrf_exempt` is true for upload.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        method: &Method,
        csrf_exempt: bool,
    ) -> Result<Caller, ApiError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if let Some(rest) = authorization
            .strip_prefix("PVEAPIToken=")
            .or_else(|| authorization.strip_prefix("PVEAPIToken "))
        {
            return self.check_token(rest);
        }
        let ticket = authorization
            .strip_prefix("PVEAuthCookie=")
            .map(str::to_string)
            .or_else(|| cookie(headers, "PVEAuthCookie"))
            .ok_or_else(|| ApiError::Unauthorized("No ticket".into()))?;
        let tickets = self
            .tickets
            .lock()
            .map_err(|_| ApiError::fail("ticket store unavailable"))?;
        let entry = tickets
            .get(&ticket)
            .filter(|t| t.issued.elapsed() < TICKET_LIFETIME)
            .ok_or_else(|| ApiError::Unauthorized("invalid PVE ticket".into()))?;
        if *method != Method::GET && !csrf_exempt {
            let csrf = headers
                .get("CSRFPreventionToken")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if csrf != entry.csrf {
                return Err(ApiError::Unauthorized(
                    "Permission denied - invalid csrf token".into(),
                ));
            }
        }
        Ok(Caller {
            user: entry.user.clone(),
            token: None,
        })
    }

    fn check_token(&self, rest: &str) -> Result<Caller, ApiError> {
        let value = rest.split(';').next().unwrap_or_default();
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        let (token_id, secret) = value
            .rsplit_once('=')
            .ok_or_else(|| ApiError::Unauthorized("invalid token value!".into()))?;
        if token_id != self.creds.token_id || secret != self.creds.token_secret {
            return Err(ApiError::Unauthorized("invalid token value!".into()));
        }
        let (user, name) = token_id
            .split_once('!')
            .ok_or_else(|| ApiError::Unauthorized("invalid token value!".into()))?;
        Ok(Caller {
            user: user.to_string(),
            token: Some(name.to_string()),
        })
    }

    /// `POST /access/ticket`: the password may also be a valid ticket (renewal).
    pub(crate) fn create_ticket(
        &self,
        username: &str,
        password: &str,
        realm: Option<&str>,
    ) -> Result<Value, ApiError> {
        let user = match (username.contains('@'), realm) {
            (false, Some(realm)) => format!("{username}@{realm}"),
            _ => username.to_string(),
        };
        let mut tickets = self
            .tickets
            .lock()
            .map_err(|_| ApiError::fail("ticket store unavailable"))?;
        let renewal = tickets
            .get(password)
            .is_some_and(|t| t.user == user && t.issued.elapsed() < TICKET_LIFETIME);
        if user != self.creds.user || (password != self.creds.password && !renewal) {
            return Err(ApiError::Unauthorized("authentication failure".into()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let ticket = format!("PVE:{user}:{now:08X}::{}", self.random_text(96));
        let csrf = format!("{now:08X}:{}", self.random_text(32));
        tickets.insert(
            ticket.clone(),
            Ticket {
                user: user.clone(),
                csrf: csrf.clone(),
                issued: Instant::now(),
            },
        );
        Ok(json!({
            "ticket": ticket,
            "CSRFPreventionToken": csrf,
            "username": user,
            "clustername": "kiln-lab",
            "cap": {},
        }))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v.trim_matches('"'))
                .decode_utf8_lossy()
                .into_owned()
        })
}
