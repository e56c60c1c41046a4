//! The kiln health agent: the checks it runs on a host, the reports it sends, and the wire
//! types the collector (`kiln serve`) shares with it.
//!
//! The contract between the three parties that meet here:
//! - [`report`]: what an agent POSTs to [`report::REPORTS_PATH`] and the collector stores;
//! - [`config`]: the file `kiln agent install` (or the engine's deploy step) writes on a host
//!   and `kiln-agent run --config FILE` reads.

pub mod config;
pub mod report;
