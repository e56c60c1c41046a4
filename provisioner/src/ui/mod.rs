//! How kiln talks to the person or program running it: logs, progress,
//! output formats.

pub mod logging;
pub mod plan_view;
pub mod progress;
pub mod runs_view;
