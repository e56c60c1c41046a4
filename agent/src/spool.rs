//! Reports the collector has not taken yet, one file each in `state_dir/spool/`, named by
//! sequence number so the directory order is the send order. Bounded: when full, the
//! oldest go first.

use std::path::{Path, PathBuf};

use crate::files::{StateError, ensure_dir, write_atomic};

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limit: usize,
}

/// One spooled report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Spooled {
    pub sequence: u64,
    pub path: PathBuf,
}

impl Spool {
    /// Opens (and creates) `state_dir/spool`, keeping at most `limit` reports.
    pub fn open(state_dir: &Path, limit: usize) -> Result<Self, StateError> {
        let dir = state_dir.join("spool");
        ensure_dir(&dir)?;
        Ok(Self {
            dir,
            limit: limit.max(1),
        })
    }

    /// Stores a report; returns how many of the oldest were dropped to stay in bounds.
    pub fn push(&self, sequence: u64, body: &[u8]) -> Result<usize, StateError> {
        write_atomic(&self.dir.join(format!("{sequence:020}.json")), body)?;
        let pending = self.pending()?;
        let excess = pending.len().saturating_sub(self.limit);
        for oldest in &pending[..excess] {
            self.remove(oldest)?;
        }
        Ok(excess)
    }

    /// Every spooled report, oldest first.
    pub fn pending(&self) -> Result<Vec<Spooled>, StateError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|error| StateError::new("cannot list", &self.dir, error))?;
        let mut spooled: Vec<Spooled> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let sequence = name.to_str()?.strip_suffix(".json")?.parse().ok()?;
                Some(Spooled {
                    sequence,
                    path: entry.path(),
                })
            })
            .collect();
        spooled.sort();
        Ok(spooled)
    }

    pub fn read(&self, spooled: &Spooled) -> Result<Vec<u8>, StateError> {
        std::fs::read(&spooled.path)
            .map_err(|error| StateError::new("cannot read", &spooled.path, error))
    }

    pub fn remove(&self, spooled: &Spooled) -> Result<(), StateError> {
        match std::fs::remove_file(&spooled.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StateError::new("cannot remove", &spooled.path, error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_drops_the_oldest_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 3).unwrap();
        for sequence in [9, 10, 11] {
            assert_eq!(spool.push(sequence, b"{}").unwrap(), 0);
        }
        assert_eq!(spool.push(12, b"{}").unwrap(), 1);
        let left: Vec<u64> = spool
            .pending()
            .unwrap()
            .iter()
            .map(|s| s.sequence)
            .collect();
        assert_eq!(left, [10, 11, 12]);
    }

    #[test]
    fn leftover_temporary_files_are_not_reports() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 10).unwrap();
        spool.push(1, b"{}").unwrap();
        std::fs::write(dir.path().join("spool/00000000000000000002.json.tmp"), "{").unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
    }
}
