//! What the running collector knows of each node, in memory: the latest
//! report, the last sequence number of its current token, and its rate
//! budget. Ingest checks and updates it under one short lock; the listing,
//! the metrics and the page read snapshots of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kiln_agent::report::Check;
use serde::{Deserialize, Serialize};

use crate::state::{LastReport, NodeState, node_state};
use crate::store::StoredReport;
use crate::tokens::{NodeIdentity, VerifiedToken};

/// How fast one node may send: a token bucket of `burst` reports, refilled
/// at `per_second`. Agents report every few seconds; the burst leaves room
/// for an agent emptying its spool after an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 2.0,
        }
    }
}

/// One node as `/api/v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub cluster: String,
    pub node: String,
    pub state: NodeState,
    /// Seconds since the collector received the latest report.
    pub last_report_age_secs: Option<f64>,
    pub received_at_ms: Option<u64>,
    pub sequence: Option<u64>,
    pub interval_secs: Option<u32>,
    pub agent_version: Option<String>,
    /// The latest report's checks (empty before the first report).
    pub checks: Vec<Check>,
}

/// The body of `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodesResponse {
    pub generated_at_ms: u64,
    pub nodes: Vec<NodeView>,
}

/// Why a report was turned away by the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too fast: try again after this long.
    RateLimited { retry_after: Duration },
    /// The sequence number is not above the last one seen for this token.
    Replayed { last: u64 },
    /// The node holds a newer token than this one (ids only grow).
    Superseded,
}

#[derive(Debug)]
struct Entry {
    token_id: i64,
    last_sequence: Option<u64>,
    latest: Option<Arc<StoredReport>>,
    bucket: Bucket,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug)]
pub struct NodeTable {
    limit: RateLimit,
    entries: Mutex<HashMap<NodeIdentity, Entry>>,
}

impl NodeTable {
    /// A table holding the stored latest reports and every node with a
    /// token (`tokens`: identity and current token id).
    pub fn new(
        limit: RateLimit,
        latest: Vec<StoredReport>,
        tokens: Vec<(NodeIdentity, i64)>,
    ) -> Self {
        let table = Self {
            limit,
            entries: Mutex::new(HashMap::new()),
        };
        {
            let mut entries = table.lock();
            for stored in latest {
                let identity = NodeIdentity {
                    cluster: stored.report.cluster.clone(),
                    node: stored.report.node.clone(),
                };
                let entry = Entry {
                    token_id: stored.token_id,
                    last_sequence: Some(stored.report.sequence),
                    latest: Some(Arc::new(stored)),
                    bucket: table.full_bucket(),
                };
                entries.insert(identity, entry);
            }
        }
        table.sync(tokens);
        table
    }

    /// Makes the table's nodes those holding a token: a revoked node leaves
    /// the listing, a newly issued one appears as unknown, a re-issued one
    /// starts a new sequence space.
    pub fn sync(&self, tokens: Vec<(NodeIdentity, i64)>) {
        let mut entries = self.lock();
        let current: HashMap<NodeIdentity, i64> = tokens.into_iter().collect();
        entries.retain(|identity, _| current.contains_key(identity));
        for (identity, token_id) in current {
            let entry = entries.entry(identity).or_insert_with(|| Entry {
                token_id,
                last_sequence: None,
                latest: None,
                bucket: self.full_bucket(),
            });
            if entry.token_id != token_id {
                entry.token_id = token_id;
                entry.last_sequence = None;
            }
        }
    }

    /// Takes one report's worth from the node's rate budget.
    pub fn admit(&self, token: &VerifiedToken, now: Instant) -> Result<(), Refusal> {
        let mut entries = self.lock();
        let entry = self.entry(&mut entries, token)?;
        let bucket = &mut entry.bucket;
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if self.limit.per_second > 0.0 {
            (1.0 - bucket.tokens) / self.limit.per_second
        } else {
            60.0
        };
        Err(Refusal::RateLimited {
            retry_after: Duration::from_secs_f64(wait.clamp(0.001, 3600.0)),
        })
    }

    /// Claims `sequence` for the token's node if it is above every one seen
    /// with this token; returns the previous one, for [`Self::release`].
    pub fn claim(&self, token: &VerifiedToken, sequence: u64) -> Result<Option<u64>, Refusal> {
        let mut entries = self.lock();
        let entry = self.entry(&mut entries, token)?;
        if let Some(last) = entry.last_sequence
            && sequence <= last
        {
            return Err(Refusal::Replayed { last });
        }
        Ok(entry.last_sequence.replace(sequence))
    }

    /// Gives back a claimed sequence number whose report could not be
    /// stored, so the agent's retry is not taken for a replay.
    pub fn release(&self, token: &VerifiedToken, sequence: u64, previous: Option<u64>) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&token.identity)
            && entry.token_id == token.token_id
            && entry.last_sequence == Some(sequence)
        {
            entry.last_sequence = previous;
        }
    }

    /// Records a stored report as the node's latest, unless a newer one of
    /// the same token got there first.
    pub fn record(&self, token: &VerifiedToken, stored: StoredReport) {
        let mut entries = self.lock();
        let Ok(entry) = self.entry(&mut entries, token) else {
            return;
        };
        let newer = entry.latest.as_ref().is_none_or(|latest| {
            latest.token_id != stored.token_id || latest.report.sequence < stored.report.sequence
        });
        if newer {
            entry.latest = Some(Arc::new(stored));
        }
    }

    /// Drops the token's node, if it still holds this token: the registry
    /// no longer has it.
    pub fn forget(&self, token: &VerifiedToken) {
        let mut entries = self.lock();
        if entries
            .get(&token.identity)
            .is_some_and(|entry| entry.token_id == token.token_id)
        {
            entries.remove(&token.identity);
        }
    }

    /// Every node, sorted by cluster and name, as of `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> Vec<NodeView> {
        let mut latest: Vec<(NodeIdentity, Option<Arc<StoredReport>>)> = self
            .lock()
            .iter()
            .map(|(identity, entry)| (identity.clone(), entry.latest.clone()))
            .collect();
        latest.sort_by(|a, b| a.0.cmp(&b.0));
        latest
            .into_iter()
            .map(|(identity, stored)| view(identity, stored.as_deref(), now_ms))
            .collect()
    }

    fn entry<'a>(
        &self,
        entries: &'a mut HashMap<NodeIdentity, Entry>,
        token: &VerifiedToken,
    ) -> Result<&'a mut Entry, Refusal> {
        let entry = entries
            .entry(token.identity.clone())
            .or_insert_with(|| Entry {
                token_id: token.token_id,
                last_sequence: None,
                latest: None,
                bucket: self.full_bucket(),
            });
        if token.token_id < entry.token_id {
            return Err(Refusal::Superseded);
        }
        if entry.token_id != token.token_id {
            entry.token_id = token.token_id;
            entry.last_sequence = None;
        }
        Ok(entry)
    }

    fn full_bucket(&self) -> Bucket {
        Bucket {
            tokens: f64::from(self.limit.burst),
            refilled: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeIdentity, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn view(identity: NodeIdentity, stored: Option<&StoredReport>, now_ms: u64) -> NodeView {
    let last = stored.map(|stored| LastReport {
        overall: stored.report.overall(),
        interval_secs: stored.report.interval_secs,
        received_at_ms: stored.received_at_ms,
    });
    NodeView {
        state: node_state(last.as_ref(), now_ms),
        last_report_age_secs: stored.map(|stored| {
            Duration::from_millis(now_ms.saturating_sub(stored.received_at_ms)).as_secs_f64()
        }),
        received_at_ms: stored.map(|stored| stored.received_at_ms),
        sequence: stored.map(|stored| stored.report.sequence),
        interval_secs: stored.map(|stored| stored.report.interval_secs),
        agent_version: stored.map(|stored| stored.report.agent_version.clone()),
        checks: stored
            .map(|stored| stored.report.checks.clone())
            .unwrap_or_default(),
        cluster: identity.cluster,
        node: identity.node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::test_token as token;

    #[test]
    fn the_bucket_empties_and_refills_with_time() {
        let table = NodeTable::new(
            RateLimit {
                burst: 2,
                per_second: 1.0,
            },
            vec![],
            vec![],
        );
        let cp1 = token("cp1", 1);
        let start = Instant::now();
        assert!(table.admit(&cp1, start).is_ok());
        assert!(table.admit(&cp1, start).is_ok());
        let Err(Refusal::RateLimited { retry_after }) = table.admit(&cp1, start) else {
            panic!("a third report at once was admitted");
        };
        assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
        assert!(
            table
                .admit(&cp1, start + Duration::from_millis(1100))
                .is_ok()
        );
        assert!(table.admit(&token("w1", 2), start).is_ok());
    }

    #[test]
    fn a_released_sequence_can_be_claimed_again_and_a_new_token_resets_it() {
        let table = NodeTable::new(RateLimit::default(), vec![], vec![]);
        let first = token("cp1", 1);
        assert_eq!(table.claim(&first, 4), Ok(None));
        assert_eq!(table.claim(&first, 5), Ok(Some(4)));
        table.release(&first, 5, Some(4));
        assert_eq!(table.claim(&first, 5), Ok(Some(4)));
        assert_eq!(table.claim(&first, 5), Err(Refusal::Replayed { last: 5 }));
        assert_eq!(table.claim(&token("cp1", 2), 1), Ok(None));
        assert_eq!(table.claim(&first, 6), Err(Refusal::Superseded));
        assert_eq!(
            table.admit(&first, Instant::now()),
            Err(Refusal::Superseded)
        );
    }

    #[test]
    fn a_forgotten_token_takes_its_node_out_unless_it_was_replaced() {
        let table = NodeTable::new(RateLimit::default(), vec![], vec![]);
        assert_eq!(table.claim(&token("cp1", 1), 1), Ok(None));
        assert_eq!(table.claim(&token("w1", 3), 1), Ok(None));
        table.forget(&token("w1", 2));
        table.forget(&token("cp1", 1));
        let names: Vec<String> = table
            .snapshot(0)
            .into_iter()
            .map(|view| view.node)
            .collect();
        assert_eq!(names, ["w1"]);
    }

    #[test]
    fn sync_keeps_only_nodes_with_a_token() {
        let identity = |node: &str| NodeIdentity {
            cluster: "home".into(),
            node: node.into(),
        };
        let table = NodeTable::new(
            RateLimit::default(),
            vec![],
            vec![(identity("cp1"), 1), (identity("w1"), 2)],
        );
        assert_eq!(table.snapshot(0).len(), 2);
        table.sync(vec![(identity("w1"), 2), (identity("w2"), 3)]);
        let names: Vec<String> = table
            .snapshot(0)
            .into_iter()
            .map(|view| view.node)
            .collect();
        assert_eq!(names, ["w1", "w2"]);
        assert!(
            table
                .snapshot(0)
                .iter()
                .all(|view| view.state == NodeState::Unknown)
        );
    }
}
