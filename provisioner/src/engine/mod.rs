//! The engine: connects to Proxmox, observes what exists, and (soon) runs
//! the plan as a graph of steps.

mod connect;
mod events;
mod graph;
mod observe;

pub use connect::{ConnectError, proxmox_client};
pub use events::{Event, EventSink, RunOutcome, StepOutcome};
pub use graph::{Graph, GraphReport, Step, StepFailure, StepFuture, StepId};
pub use observe::{observe, observed_config};
