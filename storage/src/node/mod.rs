//! The node side of TrueNAS storage, over an SSH session kiln already holds.

mod initiator;
mod probe;
mod script;

pub use initiator::{INITIATOR_FILE, InitiatorChange, ensure_initiator_name};
pub use probe::{Chap, IscsiProbe, NfsProbe, ProbeError, ProbeStep, probe_iscsi, probe_nfs};
