//! Reading the journal: the list of runs and one run in detail. Readers
//! open their own connection; WAL lets them read while a run writes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Row, params};
use uuid::Uuid;

use crate::error::JournalError;
use crate::record::{RunDetail, RunStatus, RunSummary, StepRecord, StepStatus};
use crate::schema::{self, FILE_NAME};
use kiln_secrets::Dirs;

/// A short id has at least this many characters, like git's.
const SHORT_ID_MIN: usize = 8;

/// An ambiguous prefix names this many of the runs it matches: enough to
/// pick from, not the whole journal for a prefix like `0`.
const AMBIGUOUS_SHOWN: usize = 5;

/// The journal, read. A journal that does not exist yet reads as empty.
pub struct History {
    path: PathBuf,
    connection: Option<Connection>,
}

impl History {
    /// The journal in the state dir.
    pub fn open(dirs: &Dirs) -> Result<Self, JournalError> {
        Self::open_at(&dirs.state.join(FILE_NAME))
    }

    pub fn open_at(path: &Path) -> Result<Self, JournalError> {
        Ok(Self {
            path: path.to_owned(),
            connection: schema::open_for_reading(path)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest `limit` runs, newest first; only `cluster`'s when given.
    pub fn runs(
        &self,
        cluster: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunSummary>, JournalError> {
        let Some(connection) = &self.connection else {
            return Ok(Vec::new());
        };
        // One snapshot for the list and the ids its short forms are unique
        // against, though a run may be writing meanwhile.
        let snapshot = connection
            .unchecked_transaction()
            .map_err(|source| self.sqlite(source))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let select = format!(
            "{SUMMARY} WHERE ?1 IS NULL OR r.cluster = ?1 ORDER BY r.started_ms DESC, r.id DESC LIMIT ?2"
        );
        let mut runs = snapshot
            .prepare(&select)
            .and_then(|mut statement| {
                statement
                    .query_map(params![cluster, limit], summary)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|source| self.sqlite(source))?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| self.damaged(reason))?;
        let ids = self.all_ids(&snapshot)?;
        let length = short_length(&ids, runs.iter().map(|run| run.id));
        for run in &mut runs {
            run.short_id = shorten(run.id, length);
        }
        Ok(runs)
    }

    /// One run by its full id or a prefix only it has (dashes optional).
    pub fn run(&self, id_or_prefix: &str) -> Result<RunDetail, JournalError> {
        let prefix = normalize(id_or_prefix)?;
        let no_such_run = || JournalError::NoSuchRun {
            path: self.path.clone(),
            prefix: prefix.clone(),
        };
        let Some(connection) = &self.connection else {
            return Err(no_such_run());
        };
        let ids = self.all_ids(connection)?;
        let matching: Vec<&String> = ids.iter().filter(|id| id.starts_with(&prefix)).collect();
        let id = match matching[..] {
            [] => return Err(no_such_run()),
            [id] => id.clone(),
            _ => {
                return Err(JournalError::AmbiguousRunId {
                    prefix,
                    count: matching.len(),
                    candidates: matching
                        .into_iter()
                        .take(AMBIGUOUS_SHOWN)
                        .cloned()
                        .collect(),
                });
            }
        };
        let mut run = connection
            .query_row(&format!("{SUMMARY} WHERE r.id = ?1"), [&id], summary)
            .map_err(|source| self.sqlite(source))?
            .map_err(|reason| self.damaged(reason))?;
        let length = short_length(&ids, [run.id]);
        run.short_id = shorten(run.id, length);
        let steps = connection
            .prepare(
                "SELECT node, step, started_ms, ended_ms, attempts, outcome, error FROM steps
                 WHERE run_id = ?1 ORDER BY started_ms, seq",
            )
            .and_then(|mut statement| {
                statement
                    .query_map([&id], step)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|source| self.sqlite(source))?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| self.damaged(reason))?;
        Ok(RunDetail {
            summary: run,
            steps,
        })
    }

    /// Every run id, sorted: short ids and prefixes are unique against all
    /// of them, not just the ones listed.
    fn all_ids(&self, connection: &Connection) -> Result<Vec<String>, JournalError> {
        connection
            .prepare("SELECT id FROM runs ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(|source| self.sqlite(source))
    }

    fn sqlite(&self, source: rusqlite::Error) -> JournalError {
        JournalError::sqlite(&self.path, source)
    }

    fn damaged(&self, reason: String) -> JournalError {
        JournalError::NotAJournal {
            path: self.path.clone(),
            reason,
        }
    }
}

const SUMMARY: &str = "
SELECT r.id, r.command, r.cluster, r.inventory_hash, r.operator, r.started_ms, r.ended_ms,
       r.outcome,
       (SELECT max(coalesce(s.ended_ms, s.started_ms)) FROM steps s WHERE s.run_id = r.id)
FROM runs r";

/// A row the schema allows but this kiln cannot read (a bad id or outcome)
/// is an inner error: the query worked, the file is damaged.
type Parsed<T> = Result<T, String>;

fn summary(row: &Row<'_>) -> rusqlite::Result<Parsed<RunSummary>> {
    let id: String = row.get(0)?;
    let Ok(id) = Uuid::parse_str(&id) else {
        return Ok(Err(format!("run id `{id}` is not a UUID")));
    };
    let status = match row.get::<_, Option<String>>(7)?.as_deref() {
        None => RunStatus::NoEndRecorded,
        Some("succeeded") => RunStatus::Succeeded,
        Some("failed") => RunStatus::Failed,
        Some("interrupted") => RunStatus::Interrupted,
        Some(other) => return Ok(Err(format!("run {id} has the unknown outcome `{other}`"))),
    };
    Ok(Ok(RunSummary {
        id,
        short_id: String::new(),
        command: row.get(1)?,
        cluster: row.get(2)?,
        inventory_hash: row.get(3)?,
        operator: row.get(4)?,
        started: time(row.get(5)?),
        ended: row.get::<_, Option<i64>>(6)?.map(time),
        status,
        last_recorded: row.get::<_, Option<i64>>(8)?.map(time),
    }))
}

fn step(row: &Row<'_>) -> rusqlite::Result<Parsed<StepRecord>> {
    let name: String = row.get(1)?;
    let detail: Option<String> = row.get(6)?;
    let status = match row.get::<_, Option<String>>(5)?.as_deref() {
        None => StepStatus::NoEndRecorded,
        Some("succeeded") => StepStatus::Succeeded,
        Some("failed") => StepStatus::Failed(detail.unwrap_or_default()),
        Some("skipped") => StepStatus::Skipped(detail.unwrap_or_default()),
        Some(other) => {
            return Ok(Err(format!(
                "step `{name}` has the unknown outcome `{other}`"
            )));
        }
    };
    let attempts = match row.get::<_, Option<i64>>(4)?.map(u32::try_from).transpose() {
        Ok(attempts) => attempts,
        Err(_) => {
            return Ok(Err(format!(
                "step `{name}` has a negative or huge attempt count"
            )));
        }
    };
    Ok(Ok(StepRecord {
        node: row.get(0)?,
        step: name,
        started: time(row.get(2)?),
        ended: row.get::<_, Option<i64>>(3)?.map(time),
        attempts,
        status,
    }))
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// The id as stored (lowercase, dashed) from whatever the user typed:
/// any case, with or without dashes.
fn normalize(given: &str) -> Result<String, JournalError> {
    let digits: String = given
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.is_empty() || digits.len() > 32 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(JournalError::BadRunId {
            given: given.to_owned(),
        });
    }
    let mut dashed = String::with_capacity(36);
    for (index, digit) in digits.chars().enumerate() {
        if matches!(index, 8 | 12 | 16 | 20) {
            dashed.push('-');
        }
        dashed.push(digit);
    }
    Ok(dashed)
}

/// One length for all `shown` ids, long enough that each is unique among
/// `all` (sorted). UUID v7 ids begin with the start time in milliseconds,
/// so runs started within a minute of each other share eight characters.
fn short_length(all: &[String], shown: impl IntoIterator<Item = Uuid>) -> usize {
    let mut length = SHORT_ID_MIN;
    for id in shown {
        let id = id.to_string();
        let at = all.partition_point(|other| *other < id);
        let neighbours = [at.checked_sub(1), Some(at + 1)];
        for neighbour in neighbours
            .into_iter()
            .flatten()
            .filter_map(|index| all.get(index))
        {
            let common = id
                .bytes()
                .zip(neighbour.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            length = length.max(common + 1);
        }
    }
    length
}

/// The first `length` characters, never ending on a dash.
fn shorten(id: Uuid, length: usize) -> String {
    let id = id.to_string();
    let mut short: String = id.chars().take(length).collect();
    if short.ends_with('-') {
        short.extend(id.chars().nth(length));
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized_to_the_stored_form() {
        assert_eq!(normalize("0193B2C4").unwrap(), "0193b2c4");
        assert_eq!(normalize("0193b2c45e6f").unwrap(), "0193b2c4-5e6f");
        assert_eq!(normalize(" 0193b2c4-5e ").unwrap(), "0193b2c4-5e");
        for bad in [
            "",
            "-",
            "xyz",
            "0193b2c4 5e6f",
            "0193b2c4-5e6f-7abc-8def-0123456789abc",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn short_ids_grow_until_unique_and_never_end_on_a_dash() {
        let a = Uuid::parse_str("0193b2c4-5e6f-7abc-8def-0123456789ab").unwrap();
        let b = Uuid::parse_str("0193b2c4-5e70-7abc-8def-0123456789ab").unwrap();
        let c = Uuid::parse_str("9193b2c4-5e6f-7abc-8def-0123456789ab").unwrap();
        let mut all: Vec<String> = [a, b, c].iter().map(Uuid::to_string).collect();
        all.sort();
        assert_eq!(short_length(&all, [c]), SHORT_ID_MIN);
        assert_eq!(shorten(c, short_length(&all, [c])), "9193b2c4");
        let length = short_length(&all, [a, c]);
        assert_eq!(shorten(a, length), "0193b2c4-5e6");
        assert_eq!(shorten(b, length), "0193b2c4-5e7");
        assert_eq!(shorten(a, 9), "0193b2c4-5");
    }
}
