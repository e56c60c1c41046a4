//! The file backend's run lock: `flock` on `<state dir>/<cluster>.lock`,
//! whose contents name the holder. The kernel releases the flock when the
//! holding process exits, however it exits, so a file lock is never stale.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Holder, Inner, LockError, LockRequest, RunLock};
use crate::paths::private_dir;

pub struct FileLock {
    file: File,
}

impl FileLock {
    pub fn release(self) -> Result<(), LockError> {
        // Emptied first, so a reader never sees a released holder as current.
        self.file
            .set_len(0)
            .and_then(|()| self.file.unlock())
            .map_err(|error| LockError::Backend(format!("cannot release the lock file: {error}")))
    }
}

/// Takes the lock at `path` without waiting.
pub fn acquire(path: &Path, request: LockRequest) -> Result<RunLock, LockError> {
    let io = |action: &str, error: std::io::Error| {
        LockError::Backend(format!("cannot {action} {}: {error}", path.display()))
    };
    if let Some(dir) = path.parent() {
        private_dir(dir).map_err(|error| LockError::Backend(error.to_string()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| io("open", error))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            return Err(LockError::Held {
                cluster: request.cluster,
                location: path.display().to_string(),
                age: holder.age(SystemTime::now()),
                holder: Box::new(holder),
            });
        }
        Err(TryLockError::Error(error)) => return Err(io("lock", error)),
    }
    let holder = request.holder();
    let json = serde_json::to_vec_pretty(&holder)
        .map_err(|error| LockError::Backend(format!("cannot encode the holder: {error}")))?;
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(&json))
        .and_then(|()| file.sync_all())
        .map_err(|error| io("write", error))?;
    Ok(RunLock {
        holder,
        location: path.display().to_string(),
        taken_over: None,
        inner: Inner::File(FileLock { file }),
    })
}

/// The holder named in the lock file. The holder writes it right after
/// taking the flock, so an empty file is read again briefly.
fn read_holder(file: &mut File) -> Holder {
    for _ in 0..10 {
        let mut text = String::new();
        let read = file.rewind().and_then(|()| file.read_to_string(&mut text));
        if read.is_ok()
            && let Ok(holder) = serde_json::from_str::<Holder>(&text)
        {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Holder::unknown()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_taker_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home.lock");
        let first = acquire(&path, LockRequest::new("home", "kiln apply")).unwrap();
        let error = match acquire(&path, LockRequest::new("home", "kiln apply")) {
            Err(error) => error,
            Ok(_) => panic!("the lock was taken twice"),
        };
        let holder = error.holder().unwrap();
        assert_eq!(holder.run_id, first.holder().run_id);
        assert_eq!(holder.pid, std::process::id());
        first.release().await.unwrap();
        let again = acquire(&path, LockRequest::new("home", "kiln apply")).unwrap();
        again.release().await.unwrap();
    }
}
