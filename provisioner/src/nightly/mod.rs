//! Nightly reprovision tests: an ephemeral copy of the cluster (an inventory
//! profile) is built, verified and always torn down; the outcome is a JUnit
//! file and a JSON summary. The orchestration is `kiln nightly`
//! (cli/nightly.rs); here are the pieces it is built from.

mod junit;
mod summary;

pub use junit::junit_xml;
pub use summary::{NightlyCase, NightlySummary};
