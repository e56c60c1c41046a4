//! Seeded fault draws: per operation, whether a request is dropped or answered with an
//! error, how long it is delayed, and how its background task runs and ends.
//!
//! Every decision is a pure function of (seed, operation, how many times that operation was
//! seen before), so a run that sends the same requests per operation meets the same faults,
//! whatever the interleaving between operations. What the errors are (`K`) and what the
//! operations are called belongs to the emulator; the faults file that holds them too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::Deserialize;

/// An emulator's error kinds, with the ones drawn when a rule lists none.
pub trait FaultKinds: Copy {
    /// Drawn for a request error when `errors` is empty.
    const REQUEST_DEFAULT: Self;
    /// Drawn for a task error when `task_errors` is empty.
    const TASK_DEFAULT: Self;
}

/// Faults and latencies of one operation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperationFaults<K> {
    /// Fraction (0..=1) of requests answered with an error from `errors` instead of running.
    #[serde(default)]
    pub error_rate: f64,
    /// Errors to draw from (uniformly); `K::REQUEST_DEFAULT` when empty.
    #[serde(default = "Vec::new")]
    pub errors: Vec<K>,
    /// Delay before the answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// How long the operation's task runs (for operations that start one).
    #[serde(default)]
    pub task_ms: Option<u64>,
    /// Fraction of tasks that end with an error from `task_errors`.
    #[serde(default)]
    pub task_failure_rate: f64,
    /// Task errors to draw from; `K::TASK_DEFAULT` when empty.
    #[serde(default = "Vec::new")]
    pub task_errors: Vec<K>,
    /// Fraction of requests whose connection is closed without an answer.
    #[serde(default)]
    pub drop_rate: f64,
}

impl<K> Default for OperationFaults<K> {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            errors: Vec::new(),
            latency_ms: 0,
            task_ms: None,
            task_failure_rate: 0.0,
            task_errors: Vec::new(),
            drop_rate: 0.0,
        }
    }
}

/// Checks that every rate of every rule is between 0 and 1.
pub fn check_rates<K>(operations: &BTreeMap<String, OperationFaults<K>>) -> Result<(), String> {
    for (op, rule) in operations {
        for (name, rate) in [
            ("error_rate", rule.error_rate),
            ("task_failure_rate", rule.task_failure_rate),
            ("drop_rate", rule.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "operations.{op}.{name}: {rate} is not between 0 and 1"
                ));
            }
        }
    }
    Ok(())
}

/// What happens to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan<K> {
    pub drop_connection: bool,
    pub error: Option<K>,
    pub latency: Duration,
    pub task_duration: Option<Duration>,
    pub task_error: Option<K>,
}

impl<K> Default for FaultPlan<K> {
    fn default() -> Self {
        Self {
            drop_connection: false,
            error: None,
            latency: Duration::ZERO,
            task_duration: None,
            task_error: None,
        }
    }
}

/// The rules in force with their per-operation counters.
#[derive(Debug)]
pub struct FaultDraws<K> {
    seed: u64,
    /// `"*"` applies to operations not listed.
    operations: BTreeMap<String, OperationFaults<K>>,
    counters: Mutex<HashMap<String, u64>>,
}

impl<K: FaultKinds> FaultDraws<K> {
    pub fn new(seed: u64, operations: BTreeMap<String, OperationFaults<K>>) -> Self {
        Self {
            seed,
            operations,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Draws the faults of the next request of `operation`.
    pub fn plan(&self, operation: &str) -> FaultPlan<K> {
        let Some(rule) = self
            .operations
            .get(operation)
            .or_else(|| self.operations.get("*"))
        else {
            return FaultPlan::default();
        };
        let n = {
            let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = counters.entry(operation.to_string()).or_insert(0);
            *slot += 1;
            *slot - 1
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(fnv1a(operation));
        rng.set_word_pos(u128::from(n) * 32);
        let mut draw = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (drop_draw, error_draw, error_pick, task_draw, task_pick) =
            (draw(), draw(), draw(), draw(), draw());
        let pick = |kinds: &[K], fallback: K, u: f64| {
            if kinds.is_empty() {
                fallback
            } else {
                kinds[((u * kinds.len() as f64) as usize).min(kinds.len() - 1)]
            }
        };
        FaultPlan {
            drop_connection: drop_draw < rule.drop_rate,
            error: (error_draw < rule.error_rate)
                .then(|| pick(&rule.errors, K::REQUEST_DEFAULT, error_pick)),
            latency: Duration::from_millis(rule.latency_ms),
            task_duration: rule.task_ms.map(Duration::from_millis),
            task_error: (task_draw < rule.task_failure_rate)
                .then(|| pick(&rule.task_errors, K::TASK_DEFAULT, task_pick)),
        }
    }
}

/// The stream of an operation: its name hashed, so that operations draw independently.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Kind {
        A,
        B,
    }

    impl FaultKinds for Kind {
        const REQUEST_DEFAULT: Self = Kind::A;
        const TASK_DEFAULT: Self = Kind::B;
    }

    fn draws(seed: u64) -> FaultDraws<Kind> {
        let clone = OperationFaults {
            error_rate: 0.5,
            task_failure_rate: 0.3,
            ..OperationFaults::default()
        };
        let rest = OperationFaults {
            drop_rate: 0.1,
            ..OperationFaults::default()
        };
        FaultDraws::new(
            seed,
            BTreeMap::from([("clone".to_string(), clone), ("*".to_string(), rest)]),
        )
    }

    #[test]
    fn same_seed_same_plans_other_seed_other_plans() {
        let plans = |d: &FaultDraws<Kind>| (0..64).map(|_| d.plan("clone")).collect::<Vec<_>>();
        let a = plans(&draws(7));
        assert_eq!(a, plans(&draws(7)));
        assert_ne!(a, plans(&draws(8)));
        let errors: Vec<Kind> = a.iter().filter_map(|p| p.error).collect();
        assert!(
            (16..=48).contains(&errors.len()),
            "{} errors of 64 at rate 0.5",
            errors.len()
        );
        assert!(errors.iter().all(|k| *k == Kind::A), "the default kind");
    }

    #[test]
    fn interleaving_other_operations_changes_nothing() {
        let (alone, mixed) = (draws(3), draws(3));
        let a: Vec<_> = (0..16).map(|_| alone.plan("clone")).collect();
        let b: Vec<_> = (0..16)
            .map(|_| {
                mixed.plan("start");
                mixed.plan("clone")
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn rates_outside_zero_one_are_rejected() {
        let bad = OperationFaults::<Kind> {
            error_rate: 2.0,
            ..OperationFaults::default()
        };
        let err = check_rates(&BTreeMap::from([("start".to_string(), bad)])).unwrap_err();
        assert!(err.contains("operations.start.error_rate"), "{err}");
    }
}
