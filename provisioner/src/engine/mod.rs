//! The engine: connects to Proxmox, observes what exists, and (soon) runs
//! the plan as a graph of steps.

mod connect;
mod observe;

pub use connect::{ConnectError, proxmox_client};
pub use observe::{observe, observed_config};
