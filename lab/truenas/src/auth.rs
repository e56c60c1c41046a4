//! API-key authentication as 25.10 does it: one user-linked key `<id>-<64 alphanumerics>`,
//! `auth.login_with_api_key` and `auth.login_ex` (`API_KEY_PLAIN`), and the key revoked
//! for good when it is used over an insecure transport (`plugins/auth_/login_ex_impl.py`:
//! plain key, not TLS, not loopback → `api_key.revoke(…, 'Attempt to use over an insecure
//! transport')`, answer `EXPIRED`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

/// The user the key belongs to: TrueNAS 25's default administrator.
pub(crate) const USERNAME: &str = "truenas_admin";
/// The key's id, the part before the dash.
const KEY_ID: u32 = 1;

/// The emulator's one API key.
pub(crate) struct Auth {
    key: String,
    revoked: AtomicBool,
}

/// How a login attempt ends (`auth.login_ex`'s `response_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginOutcome {
    Success,
    AuthErr,
    Expired,
}

/// Where a connection comes from (`utils/origin.py` `secure_transport`): TLS or loopback.
pub(crate) fn secure_transport(tls: bool, peer: IpAddr) -> bool {
    tls || peer.is_loopback()
}

impl Auth {
    pub(crate) fn generate() -> Self {
        let secret: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        Self {
            key: format!("{KEY_ID}-{secret}"),
            revoked: AtomicBool::new(false),
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether the part of `key` before the dash is this key's id.
    pub(crate) fn knows_key_id(&self, key: &str) -> bool {
        key.split('-').next().and_then(|id| id.parse::<u32>().ok()) == Some(KEY_ID)
    }

    pub(crate) fn revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }

    /// A plain-key login by `username` (None: `login_with_api_key`, which looks the user up
    /// from the key) over a transport that is `secure` or not.
    pub(crate) fn login(&self, username: Option<&str>, key: &str, secure: bool) -> LoginOutcome {
        if !constant_time_eq(key.as_bytes(), self.key.as_bytes()) {
            return LoginOutcome::AuthErr;
        }
        if username.is_some_and(|u| u != USERNAME) {
            return LoginOutcome::AuthErr;
        }
        if self.revoked() {
            return LoginOutcome::Expired;
        }
        if !secure {
            tracing::warn!("API key {KEY_ID} revoked: Attempt to use over an insecure transport");
            self.revoked.store(true, Ordering::SeqCst);
            return LoginOutcome::Expired;
        }
        LoginOutcome::Success
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `auth.me` / `user_info`: the key's user.
pub(crate) fn user_info() -> Value {
    json!({
        "pw_name": USERNAME,
        "pw_gecos": "TrueNAS Admin",
        "pw_dir": format!("/home/{USERNAME}"),
        "pw_shell": "/usr/bin/zsh",
        "pw_uid": 950,
        "pw_gid": 950,
        "grouplist": [950, 544],
        "sid": null,
        "source": "LOCAL",
        "local": true,
        "attributes": {},
        "two_factor_config": {"secret_configured": false, "interval": 30, "otp_digits": 6},
        "privilege": {"roles": ["FULL_ADMIN"], "allowlist": [{"method": "*", "resource": "*"}], "web_shell": true},
        "account_attributes": ["LOCAL", "API_KEY"],
    })
}

/// The `auth.login_ex` answer for an outcome.
pub(crate) fn login_ex_response(outcome: LoginOutcome, with_user_info: bool) -> Value {
    match outcome {
        LoginOutcome::Success => json!({
            "response_type": "SUCCESS",
            "user_info": if with_user_info { user_info() } else { Value::Null },
            "authenticator": "LEVEL_1",
        }),
        LoginOutcome::AuthErr => json!({"response_type": "AUTH_ERR"}),
        LoginOutcome::Expired => json!({"response_type": "EXPIRED"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_has_truenas_format() {
        let auth = Auth::generate();
        let (id, secret) = auth.key().split_once('-').unwrap();
        assert_eq!(id, "1");
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn insecure_plain_login_revokes_the_key() {
        let auth = Auth::generate();
        let key = auth.key().to_string();
        let remote: IpAddr = "10.213.7.2".parse().unwrap();
        assert_eq!(auth.login(None, "1-wrong", true), LoginOutcome::AuthErr);
        assert_eq!(
            auth.login(None, &key, secure_transport(false, remote)),
            LoginOutcome::Expired
        );
        assert!(auth.revoked());
        // Revoked for good, TLS or not.
        assert_eq!(
            auth.login(Some(USERNAME), &key, true),
            LoginOutcome::Expired
        );
    }

    #[test]
    fn loopback_is_a_secure_transport() {
        let auth = Auth::generate();
        let key = auth.key().to_string();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            auth.login(Some(USERNAME), &key, secure_transport(false, local)),
            LoginOutcome::Success
        );
        assert_eq!(auth.login(Some("root"), &key, true), LoginOutcome::AuthErr);
    }
}
