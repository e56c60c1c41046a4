//! Shared by the integration tests and the bench.

pub mod collector;
