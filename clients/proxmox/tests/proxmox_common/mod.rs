//! Shared helpers for the lab contract tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test file uses every helper

use std::time::Duration;

use kiln_lab::{LabConfig, RunningLab};
use kiln_proxmox::{Auth, ClientConfig, LimitsConfig, ProxmoxClient, RetryPolicy};
use kiln_tls::{Fingerprint, Trust};

/// The template every lab starts with (on `pve1`).
pub const TEMPLATE: u32 = 9000;

pub async fn start_lab(config: LabConfig) -> RunningLab {
    let lab = kiln_lab::start(config).await.expect("lab starts");
    lab.add_template("pve1", TEMPLATE, "debian-12-kiln")
        .expect("template added");
    lab
}

pub fn pin(lab: &RunningLab) -> Trust {
    Trust::Pin(
        lab.fingerprint
            .parse::<Fingerprint>()
            .expect("lab fingerprint parses"),
    )
}

/// Retries fast enough for tests, still bounded.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_times: 10,
        max_total: Duration::from_secs(20),
    }
}

pub fn client_with(lab: &RunningLab, auth: Auth, trust: Trust) -> ProxmoxClient {
    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, trust);
    config.retry = fast_retry();
    config.task_poll_max = Duration::from_millis(50);
    config.task_timeout = Duration::from_secs(30);
    config.request_timeout = Duration::from_secs(10);
    config.limits = LimitsConfig {
        per_node: 4,
        per_storage: 3,
    };
    ProxmoxClient::new(config).expect("client builds")
}

pub fn client(lab: &RunningLab) -> ProxmoxClient {
    let auth = Auth::token_from_str(&lab.token()).expect("lab token parses");
    client_with(lab, auth, pin(lab))
}

/// The seed of a randomized test: `KILN_TEST_SEED` or a fresh one.
pub fn seed() -> u64 {
    std::env::var("KILN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Prints the seed if the test panics, so the failure can be replayed.
pub struct SeedGuard(pub u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed with seed {0}; rerun with KILN_TEST_SEED={0}",
                self.0
            );
        }
    }
}
