//! The engine: connects to Proxmox, observes what exists, and (soon) runs
//! the plan as a graph of steps.

mod connect;
mod events;
mod observe;

pub use connect::{ConnectError, proxmox_client};
pub use events::{Event, EventSink, RunOutcome, StepOutcome};
pub use observe::{observe, observed_config};
