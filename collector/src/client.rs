//! Reading a collector's node listing, as `kiln status` does.

use std::time::Duration;

use kiln_tls::Trust;

use crate::error::CollectorError;
use crate::nodes::NodesResponse;
use crate::server::NODES_PATH;

/// `GET {base_url}/api/v1/nodes`, trusting the collector's certificate as
/// `trust` says (a fingerprint pin for kiln's self-signed one).
pub async fn fetch_nodes(
    base_url: &str,
    trust: &Trust,
    timeout: Duration,
) -> Result<NodesResponse, CollectorError> {
    let base = base_url.trim_end_matches('/');
    let url = format!("{base}{NODES_PATH}");
    let failed = |reason: String| CollectorError::Client {
        url: url.clone(),
        reason,
    };
    let tls = trust
        .client_config()
        .map_err(|error| failed(format!("TLS: {error}")))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| failed(format!("HTTP client: {}", chain(&error))))?;
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|error| failed(chain(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    response
        .json()
        .await
        .map_err(|error| failed(format!("not a node listing: {}", chain(&error))))
}

/// An error with its causes: reqwest's own message hides the TLS reason.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
