use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::string_value;

/// A duration written for humans: `15s`, `2m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let duration = humantime::parse_duration(text).map_err(|error| {
            format!("invalid duration `{text}`: {error}; expected e.g. 15s, 2m or 1h")
        })?;
        if duration.is_zero() {
            return Err(format!(
                "invalid duration `{text}`: must be longer than zero"
            ));
        }
        Ok(Self(duration))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

string_value!(
    Interval,
    "interval",
    Some(r"^([0-9]+\s*[a-z]+\s*)+$"),
    "A duration, like 15s, 2m or 1h."
);
