//! The report sequence number: strictly increasing across restarts and crashes.
//!
//! Each number is written to disk (atomically, fsynced) before the report that carries it
//! is built, so a crash can skip a number but never hand one out twice. A state dir with
//! no sequence file starts at the current time in milliseconds: a counter that grows by one
//! per report never catches up with the clock, so a host whose state was wiped still moves
//! past every number the collector saw from it before.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::files::{StateError, ensure_dir, write_atomic};

const FILE_NAME: &str = "sequence";

#[derive(Debug)]
pub struct Sequence {
    path: PathBuf,
    last: u64,
}

impl Sequence {
    /// Opens the counter in `state_dir`, creating the dir if needed.
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        ensure_dir(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(last) => last,
                Err(_) => {
                    tracing::warn!(
                        path = %path.display(),
                        "the sequence file is not a number; restarting from the clock"
                    );
                    clock_floor()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => clock_floor(),
            Err(error) => return Err(StateError::new("cannot read", &path, error)),
        };
        Ok(Self { path, last })
    }

    /// The next number, already on disk when this returns.
    pub fn reserve(&mut self) -> Result<u64, StateError> {
        let next = self.last.saturating_add(1);
        write_atomic(&self.path, format!("{next}\n").as_bytes())?;
        self.last = next;
        Ok(next)
    }

    /// The last number handed out (or the starting point, before the first).
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// One below the current time in milliseconds, so the first number is the time itself.
fn clock_floor() -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    now_ms.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_survive_reopening_and_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut sequence = Sequence::open(dir.path()).unwrap();
        let first = sequence.reserve().unwrap();
        let second = sequence.reserve().unwrap();
        assert_eq!(second, first + 1);
        drop(sequence);
        let mut reopened = Sequence::open(dir.path()).unwrap();
        assert_eq!(reopened.reserve().unwrap(), second + 1);
    }

    #[test]
    fn a_fresh_state_dir_starts_from_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let before = clock_floor();
        let first = Sequence::open(dir.path()).unwrap().reserve().unwrap();
        assert!(first > before, "{first} <= {before}");
    }

    #[test]
    fn a_garbled_file_restarts_above_the_clock_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        let before = clock_floor();
        assert!(Sequence::open(dir.path()).unwrap().reserve().unwrap() > before);
    }
}
