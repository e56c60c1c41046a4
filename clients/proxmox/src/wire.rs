//! The wire: one HTTP exchange with PVE and what its answer means. Requests
//! in the shape PVE takes (form, query, multipart), `{"data": …}` unwrapped,
//! failures classified into [`Error`]: the API's own message and
//! per-parameter errors, a timeout, or a transport failure (TLS refusals
//! told apart, since retrying those cannot help).

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::Duration;

use hyper::body::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Endpoint, Error, Result, Target};
use crate::params::Params;

/// Sends `request` and reads the whole answer within `timeout`.
pub(crate) async fn exchange(
    request: RequestBuilder,
    timeout: Duration,
    endpoint: &Endpoint,
    target: &Target,
) -> Result<(StatusCode, Option<String>, Bytes)> {
    let exchange = async {
        let resp = request.send().await?;
        let status = resp.status();
        let reason = reason_phrase(&resp);
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, reason, bytes))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(Error::Timeout {
            endpoint: endpoint.clone(),
            target: target.clone(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(transport(endpoint.clone(), target, &e)),
        Ok(Ok(answer)) => Ok(answer),
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

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("local:iso/x y.iso"), "local%3Aiso%2Fx%20y.iso");
        assert_eq!(seg("pve-1_a.b"), "pve-1_a.b");
    }
}
