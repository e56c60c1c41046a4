//! The engine: connects to Proxmox, observes what exists, and runs a plan
//! as a graph of steps.

mod access;
mod apply;
mod connect;
mod context;
mod graph;
mod health;
mod host;
mod observe;
mod pipeline;
mod poll;
mod rollout;
mod steps;
mod storage;
mod timeline;

pub use access::{AgentRollout, HostAccess};
pub use apply::{RunLabel, execute, run_framed};
pub use connect::{ConnectError, proxmox_client};
pub use context::{Context, Timeouts};
pub use graph::{Graph, GraphReport, Step, StepFailure, StepFuture, StepId};
pub use health::{CollectorLink, describe};
pub use kiln_journal::events::{Event, EventSink, Fanout, RunOutcome, StepOutcome};
pub use observe::{observe, observed_config};
pub use poll::{Expired, Look, Pause, poll_until};
pub use rollout::agent_config;
pub use storage::{StorageRun, check_nodes, first_failure, storage_plan};
pub use timeline::{Phase, PhaseSpan, StepRecord, Timeline};
