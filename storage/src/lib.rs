//! kiln-storage: what a cluster node needs to use TrueNAS storage, done over
//! SSH, and the proof that it can.
//!
//! - [`node::ensure_initiator_name`]: the node's iSCSI initiator name, which
//!   TrueNAS's initiator group lists. A golden image ships one name for every
//!   clone (open-iscsi writes it at install time), so kiln writes each node's
//!   own, stable across rebuilds.
//! - [`node::probe_iscsi`] and [`node::probe_nfs`]: `kiln storage check` on
//!   one node — discovery, login, a filesystem written and read back after a
//!   remount (so the bytes came from the target, not the page cache), logout;
//!   an NFS mount written and read back the same way. Each step is timed;
//!   a failure names the node and the step and cleans up what the probe made.
//!
//! The TrueNAS side (the test zvol, target and share the probes use) is made
//! through `kiln-truenas`; this crate only knows the node.

pub mod node;
