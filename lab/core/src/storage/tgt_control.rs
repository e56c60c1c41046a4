//! tgtd's management channel: the Unix socket `/run/tgtd/socket.<port>` and its lock file
//! `socket.<port>.lock`, which the running tgtd holds locked. They sit on the shared
//! filesystem whatever the network namespace, so each server needs a port of its own, and a
//! `tgtadm -C <port>` reaches whichever tgtd holds that port's lock.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};

/// Control ports are tried from here (tgtd's default is 0).
const BASE: u16 = 3261;
/// How many ports a start tries: another process's tgtd may hold one.
pub(super) const TRIES: u16 = 5;
/// Spreads concurrent servers of one process over distinct ports.
static NEXT_OFFSET: AtomicU16 = AtomicU16::new(0);

/// The ports one start tries, in order: spread by process id (tests run in several
/// processes at once) and by a counter (several servers in one process).
pub(super) fn candidates() -> impl Iterator<Item = u16> {
    let offset = NEXT_OFFSET.fetch_add(TRIES, Ordering::Relaxed);
    let by_process = u16::try_from(std::process::id() % 1000).unwrap_or(0) * 16;
    let first = BASE.wrapping_add(by_process).wrapping_add(offset);
    (0..TRIES)
        .map(move |i| first.wrapping_add(i))
        .filter(|&port| !socket_path(port).exists())
}

pub(super) fn socket_path(port: u16) -> PathBuf {
    PathBuf::from(format!("/run/tgtd/socket.{port}"))
}

fn lock_path(port: u16) -> PathBuf {
    PathBuf::from(format!("/run/tgtd/socket.{port}.lock"))
}

/// Whether process `pid` holds the port's lock, i.e. whether `tgtadm -C <port>` talks to
/// that tgtd and not to another one that took the port first (`/proc/locks` lists each
/// lock's owner pid and `major:minor:inode`).
pub(super) fn held_by(port: u16, pid: u32) -> bool {
    let Ok(inode) = std::fs::metadata(lock_path(port)).map(|m| m.ino()) else {
        return false;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let owner = fields.get(4).and_then(|p| p.parse::<u32>().ok());
        let file_inode = fields
            .get(5)
            .and_then(|id| id.rsplit(':').next())
            .and_then(|i| i.parse::<u64>().ok());
        owner == Some(pid) && file_inode == Some(inode)
    })
}

/// Removes the socket and lock files a stopped tgtd leaves behind.
pub(super) fn remove_files(port: u16) {
    let _ = std::fs::remove_file(socket_path(port));
    let _ = std::fs::remove_file(lock_path(port));
}
