//! The emulator for the client's tests, and a client configured for it.

use std::time::Duration;

use kiln_lab_truenas::{RunningTruenas, TruenasConfig, TruenasFaults};
use kiln_truenas::{ClientConfig, TruenasClient};
use secrecy::SecretString;

pub async fn start_nas(faults: TruenasFaults) -> RunningTruenas {
    kiln_lab_truenas::start(TruenasConfig {
        faults,
        ..TruenasConfig::default()
    })
    .await
    .expect("start the TrueNAS emulator")
}

/// Pinned to the emulator's certificate, logging in with `login_ex`;
/// short timeouts so a hang fails fast.
pub fn client_config(nas: &RunningTruenas) -> ClientConfig {
    let pin = nas.fingerprint.parse().expect("emulator fingerprint");
    let mut config = ClientConfig::new(
        nas.endpoint.clone(),
        SecretString::from(nas.api_key().to_owned()),
        kiln_tls::Trust::Pin(pin),
    );
    config.username = Some(nas.username().to_owned());
    config.connect_timeout = Duration::from_secs(10);
    config.call_timeout = Duration::from_secs(10);
    config.job_timeout = Duration::from_secs(20);
    config.job_poll_interval = Duration::from_millis(200);
    config
}

pub async fn connect(nas: &RunningTruenas) -> TruenasClient {
    TruenasClient::connect(client_config(nas))
        .await
        .expect("connect to the emulator")
}

/// Calls that change state on a real TrueNAS, so far.
pub fn mutating_calls(nas: &RunningTruenas) -> Vec<String> {
    nas.calls()
        .into_iter()
        .filter(|call| call.mutating())
        .map(|call| call.method)
        .collect()
}
