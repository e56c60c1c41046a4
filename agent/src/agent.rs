//! The report loop: take a snapshot, number it, send it, spool what could not be sent and
//! resend the spool oldest-first before anything newer.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checks::{self, Host};
use crate::config::AgentConfig;
use crate::files::StateError;
use crate::report::{Check, REPORT_SCHEMA, Report};
use crate::sender::{Delivery, Sender, SenderError};
use crate::sequence::Sequence;
use crate::spool::Spool;

/// Why the agent cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Sender(#[from] SenderError),
    #[error("state dir: {0}")]
    State(#[from] StateError),
    #[error("cannot encode a report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What one cycle did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleOutcome {
    /// The fresh report's sequence number.
    pub sequence: u64,
    /// Reports the collector took this cycle (spooled ones included).
    pub accepted: usize,
    /// Reports the collector refused for good and that were dropped.
    pub rejected: usize,
    /// Reports waiting in the spool after this cycle.
    pub spooled: usize,
}

pub struct Agent {
    config: AgentConfig,
    host: Host,
    sender: Sender,
    sequence: Sequence,
    spool: Spool,
    /// Set by a 429 or 5xx with Retry-After: nothing is sent before this instant.
    quiet_until: Option<Instant>,
}

/// One snapshot of the host as a report (checks run now).
pub async fn snapshot(config: &AgentConfig, host: &Host, sequence: u64) -> Report {
    let checks = checks::run_all(config, host).await;
    report(config, sequence, checks)
}

fn report(config: &AgentConfig, sequence: u64, checks: Vec<Check>) -> Report {
    let taken_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Report {
        schema: REPORT_SCHEMA,
        node: config.node.clone(),
        cluster: config.cluster.clone(),
        sequence,
        taken_at_ms,
        interval_secs: config.interval_secs,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        checks,
    }
}

impl Agent {
    pub fn new(config: AgentConfig, host: Host) -> Result<Self, AgentError> {
        let sender = Sender::new(&config.collector)?;
        let sequence = Sequence::open(&config.state_dir)?;
        let spool = Spool::open(&config.state_dir, config.spool_limit)?;
        Ok(Self {
            config,
            host,
            sender,
            sequence,
            spool,
            quiet_until: None,
        })
    }

    /// Reports every `interval_secs` until `shutdown` completes. A state dir that stops
    /// working ends the loop (systemd restarts the agent); a collector that is away does not.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let mut ticks =
            tokio::time::interval(Duration::from_secs(u64::from(self.config.interval_secs)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = ticks.tick() => {
                    let outcome = self.cycle().await?;
                    tracing::debug!(?outcome, "cycle done");
                }
            }
        }
    }

    /// One snapshot, numbered and delivered (or spooled).
    pub async fn cycle(&mut self) -> Result<CycleOutcome, AgentError> {
        let sequence = self.sequence.reserve()?;
        let fresh = snapshot(&self.config, &self.host, sequence).await;
        let body = serde_json::to_vec(&fresh)?;
        let mut outcome = CycleOutcome {
            sequence,
            ..CycleOutcome::default()
        };
        let sent_all_spooled = self.quiet_until.is_none_or(|until| Instant::now() >= until)
            && self.resend_spool(&mut outcome).await?;
        let keep = if sent_all_spooled {
            self.deliver(sequence, body.clone(), &mut outcome).await
        } else {
            true
        };
        if keep {
            let dropped = self.spool.push(sequence, &body)?;
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    limit = self.config.spool_limit,
                    "the spool is full: dropped the oldest unsent reports"
                );
            }
        }
        outcome.spooled = self.spool.pending()?.len();
        Ok(outcome)
    }

    /// Sends spooled reports oldest-first; false when one was deferred (the rest wait).
    async fn resend_spool(&mut self, outcome: &mut CycleOutcome) -> Result<bool, AgentError> {
        let pending = self.spool.pending()?;
        if pending.is_empty() {
            return Ok(true);
        }
        let before = outcome.accepted;
        for spooled in pending {
            let body = self.spool.read(&spooled)?;
            let keep = self.deliver(spooled.sequence, body, outcome).await;
            if keep {
                return Ok(false);
            }
            self.spool.remove(&spooled)?;
        }
        tracing::info!(
            resent = outcome.accepted - before,
            "the spool is empty again"
        );
        Ok(true)
    }

    /// Sends one report; true when it must be kept for a later try.
    async fn deliver(&mut self, sequence: u64, body: Vec<u8>, outcome: &mut CycleOutcome) -> bool {
        match self.sender.send(body).await {
            Delivery::Accepted => {
                outcome.accepted += 1;
                self.quiet_until = None;
                false
            }
            Delivery::Rejected { status, reason } => {
                outcome.rejected += 1;
                tracing::warn!(sequence, status, "dropped a report: {reason}");
                false
            }
            Delivery::Deferred {
                reason,
                retry_after,
            } => {
                self.quiet_until = retry_after.map(|wait| Instant::now() + wait);
                tracing::warn!(
                    sequence,
                    retry_after_secs = retry_after.map(|wait| wait.as_secs()),
                    "report kept for later: {reason}"
                );
                true
            }
        }
    }
}
