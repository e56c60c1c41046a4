//! One run per cluster at a time. The file backend holds a flock (the
//! kernel drops it when the holder dies); Vault holds a check-and-set lock
//! document with a TTL that the holder renews, and a document past its TTL
//! is taken over with a warning.

pub mod file;
pub mod vault;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long a Vault lock stays valid without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);

/// What a run asks for.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub cluster: String,
    pub run_id: String,
    /// The command holding the lock, for the message another run prints.
    pub command: String,
    pub ttl: Duration,
}

impl LockRequest {
    /// A request with a fresh time-ordered run id and the default TTL.
    pub fn new(cluster: &str, command: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            run_id: uuid::Uuid::now_v7().to_string(),
            command: command.to_owned(),
            ttl: DEFAULT_TTL,
        }
    }

    pub(crate) fn holder(&self) -> Holder {
        let now = timestamp(SystemTime::now());
        Holder {
            run_id: self.run_id.clone(),
            user: user_name(),
            host: host_name(),
            pid: std::process::id(),
            command: self.command.clone(),
            started: now.clone(),
            renewed: now,
            ttl_seconds: self.ttl.as_secs(),
        }
    }
}

/// Who holds a lock: what the lock file or document contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339; the holder's last sign of life.
    pub renewed: String,
    pub ttl_seconds: u64,
}

impl Holder {
    /// Written by a holder kiln cannot read (a lock file being written).
    pub(crate) fn unknown() -> Self {
        Self {
            run_id: "unknown".to_owned(),
            user: "unknown".to_owned(),
            host: "unknown".to_owned(),
            pid: 0,
            command: "unknown".to_owned(),
            started: String::new(),
            renewed: String::new(),
            ttl_seconds: 0,
        }
    }

    /// How long the lock has been held.
    pub fn age(&self, now: SystemTime) -> Duration {
        elapsed_since(&self.started, now)
    }

    /// Past its TTL without renewal: the holder is presumed dead.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        !self.renewed.is_empty()
            && elapsed_since(&self.renewed, now) > Duration::from_secs(self.ttl_seconds)
    }
}

fn elapsed_since(rfc3339: &str, now: SystemTime) -> Duration {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|then| now.duration_since(then).ok())
        .unwrap_or_default()
}

pub(crate) fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A duration rounded to seconds, for messages.
pub fn human(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|name| !name.is_empty()))
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The process's user when the environment does not say (cron, systemd,
/// containers): its uid from /proc, named through /etc/passwd if listed.
fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let named = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid).then(|| name.to_owned())
            })
        });
    Some(named.unwrap_or_else(|| format!("uid {uid}")))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds the lock: the CLI exits 3 with this message.
    #[error(
        "cluster `{cluster}` is locked by run {} ({}@{}, pid {}, `{}`), held for {}; \
         wait for it to finish (lock: {location})",
        holder.run_id, holder.user, holder.host, holder.pid, holder.command, human(*age)
    )]
    Held {
        cluster: String,
        location: String,
        holder: Box<Holder>,
        age: Duration,
    },

    #[error("the run lock of cluster `{cluster}` ({location}) was taken by run {by}: {reason}")]
    Lost {
        cluster: String,
        location: String,
        by: String,
        reason: String,
    },

    #[error("the run lock: {0}")]
    Backend(String),
}

impl LockError {
    /// The holder, when the lock is held by another run.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            Self::Held { holder, .. } => Some(holder),
            _ => None,
        }
    }
}

/// A held run lock. Release it at the end of the run; dropping it releases
/// a flock at once, while a Vault lock then expires after its TTL.
pub struct RunLock {
    holder: Holder,
    location: String,
    taken_over: Option<Holder>,
    inner: Inner,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock")
            .field("holder", &self.holder)
            .field("location", &self.location)
            .field("taken_over", &self.taken_over)
            .finish_non_exhaustive()
    }
}

enum Inner {
    File(file::FileLock),
    Vault(Box<vault::VaultLock>),
}

impl RunLock {
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    /// The stale holder this run replaced, if it took over a lock.
    pub fn taken_over(&self) -> Option<&Holder> {
        self.taken_over.as_ref()
    }

    /// Whether a Vault lock was lost (renewal found someone else's lock):
    /// the run should stop starting new work.
    pub fn is_lost(&self) -> bool {
        match &self.inner {
            Inner::File(_) => false,
            Inner::Vault(lock) => lock.is_lost(),
        }
    }

    pub async fn release(self) -> Result<(), LockError> {
        match self.inner {
            Inner::File(lock) => lock.release(),
            Inner::Vault(lock) => lock.release().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_named_even_without_user_in_the_environment() {
        let user = user_from_uid().unwrap();
        assert!(!user.is_empty() && user != "unknown", "{user}");
    }

    #[test]
    fn a_lock_past_its_ttl_is_stale() {
        let mut holder = LockRequest::new("home", "kiln apply").holder();
        holder.ttl_seconds = 60;
        let now = SystemTime::now();
        assert!(!holder.is_stale(now));
        assert!(holder.is_stale(now + Duration::from_secs(120)));
        assert!(holder.age(now + Duration::from_secs(90)) >= Duration::from_secs(89));
    }

    #[test]
    fn the_held_message_names_the_holder() {
        let holder = LockRequest::new("home", "kiln apply").holder();
        let error = LockError::Held {
            cluster: "home".into(),
            location: "/state/home.lock".into(),
            holder: Box::new(holder.clone()),
            age: Duration::from_secs(75),
        }
        .to_string();
        assert!(error.contains(&holder.run_id), "{error}");
        assert!(error.contains(&holder.host), "{error}");
        assert!(error.contains("1m 15s"), "{error}");
    }
}
