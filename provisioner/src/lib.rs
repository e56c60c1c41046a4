//! kiln: rebuild a homelab cluster from one inventory file.
//!
//! The binary (`src/main.rs`) only parses arguments and prints; everything it
//! does lives in these modules. See `docs/architecture.md` for the map.

pub mod drill;
pub mod engine;
pub mod nightly;
pub mod plan;
pub mod secrets;
pub mod storage;
pub mod templates;
pub mod trust;
