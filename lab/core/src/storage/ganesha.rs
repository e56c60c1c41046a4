//! nfs-ganesha, the user-space NFS server (FSAL_VFS): one `ganesha.nfsd` per server inside a
//! network namespace, with its own state directory (config, log, pid file, NFSv4 recovery)
//! and its own mount namespace, in which `/mnt` is a private tmpfs and each pool's directory
//! is bind-mounted at TrueNAS's path (`/mnt/tank`), so that export paths, NFSv4 pseudo paths
//! and NFSv3 mount paths are exactly TrueNAS's. Exports change by rewriting the config and
//! SIGHUP, which ganesha answers by re-reading its exports without a restart.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::StorageError;
use super::daemon::Daemon;
use super::ganesha_config::{Core, Export, check_export, check_path, render};

/// From spawn until ganesha logs that it serves.
const READY_WAIT: Duration = Duration::from_secs(20);
/// From SIGHUP until ganesha logs the end of the export reload.
const RELOAD_WAIT: Duration = Duration::from_secs(10);
/// After SIGTERM, how long ganesha may take before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_secs(10);

const READY_MARK: &str = "NFS SERVER INITIALIZED";
const RELOADED_MARK: &str = "Reread exports complete";
/// Where the pools appear inside the server's mount namespace, as on TrueNAS.
const MOUNT_ROOT: &str = "/mnt";

/// A pool directory on the host (`source`) and where the server sees it (`served`, under
/// `/mnt`, e.g. `/mnt/tank`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMount {
    pub source: PathBuf,
    pub served: PathBuf,
}

/// Where and how a ganesha runs.
#[derive(Debug, Clone)]
pub struct GaneshaOptions {
    /// The network namespace (it must hold `listen`).
    pub namespace: String,
    /// The one address NFS is served on (port 2049).
    pub listen: IpAddr,
    /// The server's own directory: `ganesha.conf`, `ganesha.log`, `ganesha.pid`,
    /// `recovery/`. Not under `/mnt` (hidden inside the server's mount namespace).
    pub state_dir: PathBuf,
    pub pools: Vec<PoolMount>,
    /// Also serve NFSv3 (and MOUNT); starts an `rpcbind` in the same namespaces for it.
    pub nfs_v3: bool,
}

/// A running ganesha. Dropping it kills ganesha (SIGKILL; its mount namespace and bind
/// mounts go with it) and its rpcbind; `shutdown` is the orderly way.
pub struct GaneshaServer {
    options: GaneshaOptions,
    daemon: Daemon,
    /// The exports as written to the config; the lock also serialises reloads.
    exports: Mutex<BTreeMap<u16, Export>>,
}

impl GaneshaServer {
    /// Writes a config without exports, starts ganesha and returns once it serves.
    pub fn start(options: GaneshaOptions) -> Result<Self, StorageError> {
        check_options(&options)?;
        let recovery = options.state_dir.join("recovery");
        std::fs::create_dir_all(&recovery).map_err(|e| StorageError::file(&recovery, e))?;
        let files = StateFiles::of(&options.state_dir);
        write_config(&files.config, &options, &BTreeMap::new())?;
        let _ = std::fs::remove_file(&files.pid);
        let log_start = file_len(&files.log);
        let daemon = Daemon::spawn(
            "ganesha.nfsd",
            &options.namespace,
            &command(&options, &files),
            &files.log,
        )?;
        let mut server = Self {
            options,
            daemon,
            exports: Mutex::new(BTreeMap::new()),
        };
        let started = Instant::now();
        loop {
            if !server.daemon.running() {
                return Err(server.not_ready(started));
            }
            if new_log(&files.log, log_start).contains(READY_MARK) {
                tracing::debug!(namespace = server.options.namespace, elapsed = ?started.elapsed(), "ganesha ready");
                return Ok(server);
            }
            if started.elapsed() > READY_WAIT {
                server.stop_processes();
                return Err(server.not_ready(started));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn not_ready(&self, started: Instant) -> StorageError {
        StorageError::NotReady {
            server: "ganesha.nfsd",
            namespace: self.options.namespace.clone(),
            waited: started.elapsed(),
            log: self.daemon.log_tail(),
        }
    }

    pub fn options(&self) -> &GaneshaOptions {
        &self.options
    }

    /// ganesha's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// ganesha's log file (`<state dir>/ganesha.log`).
    pub fn log(&self) -> &Path {
        self.daemon.log()
    }

    /// The exports as configured.
    pub fn exports(&self) -> Vec<Export> {
        self.lock_exports().values().cloned().collect()
    }

    /// Adds (or replaces, same id) an export and reloads; returns once ganesha has re-read
    /// its exports. The directory must exist. On a failed reload the previous config is put
    /// back (and re-read) and the error carries ganesha's complaint.
    pub fn add_export(&self, export: Export) -> Result<(), StorageError> {
        self.check_directory(&export)?;
        let mut exports = self.lock_exports();
        let mut wanted = exports.clone();
        wanted.insert(export.id, export);
        check_pseudo_paths(&wanted)?;
        self.apply(&mut exports, wanted)
    }

    /// Makes ganesha export exactly `exports` with one reload (none when nothing changed),
    /// as TrueNAS re-renders its exports after every change. Checked as `add_export` checks
    /// one; ids must be distinct.
    pub fn set_exports(&self, exports: Vec<Export>) -> Result<(), StorageError> {
        let mut wanted = BTreeMap::new();
        for export in exports {
            self.check_directory(&export)?;
            if let Some(twice) = wanted.insert(export.id, export) {
                return Err(StorageError::Invalid(format!(
                    "export id {} is given twice",
                    twice.id
                )));
            }
        }
        check_pseudo_paths(&wanted)?;
        let mut current = self.lock_exports();
        if *current == wanted {
            return Ok(());
        }
        self.apply(&mut current, wanted)
    }

    /// The export is well formed and its directory exists (as the server will see it).
    fn check_directory(&self, export: &Export) -> Result<(), StorageError> {
        check_export(export)?;
        let host_path = self.host_path(&export.path)?;
        if host_path.is_dir() {
            Ok(())
        } else {
            Err(StorageError::Invalid(format!(
                "export {} ({}): no such directory",
                export.path.display(),
                host_path.display()
            )))
        }
    }

    /// Removes an export and reloads (clients of it lose access at once).
    pub fn remove_export(&self, id: u16) -> Result<(), StorageError> {
        let mut exports = self.lock_exports();
        if !exports.contains_key(&id) {
            return Err(StorageError::UnknownExport(id));
        }
        let mut wanted = exports.clone();
        wanted.remove(&id);
        self.apply(&mut exports, wanted)
    }

    fn apply(
        &self,
        current: &mut BTreeMap<u16, Export>,
        wanted: BTreeMap<u16, Export>,
    ) -> Result<(), StorageError> {
        let files = StateFiles::of(&self.options.state_dir);
        write_config(&files.config, &self.options, &wanted)?;
        match self.reload(&files.log) {
            Ok(()) => {
                *current = wanted;
                Ok(())
            }
            Err(e) => {
                write_config(&files.config, &self.options, current)?;
                // Best effort: the failed reload may have applied part of the new exports.
                let _ = self.reload(&files.log);
                Err(e)
            }
        }
    }

    /// SIGHUP, then waits for ganesha to log the end of the reload or a complaint about it.
    fn reload(&self, log: &Path) -> Result<(), StorageError> {
        let from = file_len(log);
        let started = Instant::now();
        self.daemon.signal(Signal::SIGHUP)?;
        loop {
            let new = new_log(log, from);
            if new.contains(RELOADED_MARK) {
                tracing::debug!(elapsed = ?started.elapsed(), "ganesha exports reloaded");
                return Ok(());
            }
            let complaints: Vec<&str> = new
                .lines()
                .filter(|line| line.contains(":CONFIG :CRIT") || line.contains(":CONFIG :MAJ"))
                .collect();
            if new.contains("reread_exports") && !complaints.is_empty() {
                return Err(StorageError::Reload(complaints.join("\n")));
            }
            if started.elapsed() > RELOAD_WAIT {
                return Err(StorageError::Timeout {
                    operation: "ganesha export reload".to_string(),
                    waited: RELOAD_WAIT,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM (ganesha unexports and exits), SIGKILL after 10 s; stops its rpcbind.
    pub fn shutdown(mut self) {
        self.stop_processes();
    }

    fn stop_processes(&mut self) {
        if self.daemon.running() {
            let _ = self.daemon.signal(Signal::SIGTERM);
            if !self.daemon.wait_exit(EXIT_WAIT) {
                tracing::warn!(pid = self.daemon.pid(), "ganesha did not exit; killing it");
            }
        }
        self.daemon.kill();
        kill_rpcbind(&StateFiles::of(&self.options.state_dir).rpcbind_pid);
    }

    /// A panic during a reload leaves the map as it was (it is replaced only after success),
    /// so a poisoned lock is still good.
    fn lock_exports(&self) -> MutexGuard<'_, BTreeMap<u16, Export>> {
        self.exports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The host directory behind a served path (through the pool mounts).
    fn host_path(&self, served: &Path) -> Result<PathBuf, StorageError> {
        if !served.starts_with(MOUNT_ROOT) {
            return Ok(served.to_path_buf());
        }
        self.options
            .pools
            .iter()
            .find_map(|pool| {
                let rest = served.strip_prefix(&pool.served).ok()?;
                Some(pool.source.join(rest))
            })
            .ok_or_else(|| {
                StorageError::Invalid(format!(
                    "{} is in no pool mounted under {MOUNT_ROOT}",
                    served.display()
                ))
            })
    }
}

impl Drop for GaneshaServer {
    fn drop(&mut self) {
        // The Daemon field kills ganesha as it drops; rpcbind is not its child any more.
        kill_rpcbind(&StateFiles::of(&self.options.state_dir).rpcbind_pid);
    }
}

struct StateFiles {
    config: PathBuf,
    log: PathBuf,
    pid: PathBuf,
    rpcbind_pid: PathBuf,
}

impl StateFiles {
    fn of(state_dir: &Path) -> Self {
        Self {
            config: state_dir.join("ganesha.conf"),
            log: state_dir.join("ganesha.log"),
            pid: state_dir.join("ganesha.pid"),
            rpcbind_pid: state_dir.join("rpcbind.pid"),
        }
    }
}

fn check_options(options: &GaneshaOptions) -> Result<(), StorageError> {
    check_path("state directory", &options.state_dir)?;
    if options.state_dir.starts_with(MOUNT_ROOT) {
        return Err(StorageError::Invalid(format!(
            "state directory {}: {MOUNT_ROOT} is the server's private tmpfs, so it would be hidden",
            options.state_dir.display()
        )));
    }
    for pool in &options.pools {
        check_path("pool source", &pool.source)?;
        check_path("pool path", &pool.served)?;
        if !pool.served.starts_with(MOUNT_ROOT) || pool.served == Path::new(MOUNT_ROOT) {
            return Err(StorageError::Invalid(format!(
                "pool path {}: must be under {MOUNT_ROOT}, as TrueNAS's",
                pool.served.display()
            )));
        }
        if pool.source.starts_with(MOUNT_ROOT) {
            return Err(StorageError::Invalid(format!(
                "pool source {}: under {MOUNT_ROOT}, which the server's tmpfs hides",
                pool.source.display()
            )));
        }
        if !pool.source.is_dir() {
            return Err(StorageError::Invalid(format!(
                "pool source {}: no such directory",
                pool.source.display()
            )));
        }
    }
    Ok(())
}

/// `unshare` gives ganesha a private mount namespace; in it a shell mounts the tmpfs on
/// `/mnt` and the pools, starts rpcbind if asked, then becomes ganesha (`exec`, same pid).
fn command(options: &GaneshaOptions, files: &StateFiles) -> Vec<OsString> {
    const SCRIPT: &str = r#"set -e
conf=$1 log=$2 pid=$3 v3=$4 rpcbind_pid=$5
shift 5
mount -t tmpfs -o mode=0755 kiln-pools /mnt
while [ $# -gt 0 ]; do
    mkdir -p "$2"
    mount --bind "$1" "$2"
    shift 2
done
if [ "$v3" = yes ]; then
    # rpcbind's socket and lock live in /run: a private /run keeps this rpcbind apart
    # from the host's and from other servers'.
    mount -t tmpfs -o mode=0755 kiln-run /run
    rpcbind -f -w &
    echo $! > "$rpcbind_pid"
    n=0
    while [ ! -S /run/rpcbind.sock ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
fi
exec ganesha.nfsd -F -f "$conf" -L "$log" -p "$pid" -N NIV_EVENT
"#;
    let mut command: Vec<OsString> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        SCRIPT,
        "sh",
    ]
    .map(OsString::from)
    .to_vec();
    command.extend([
        files.config.clone().into_os_string(),
        files.log.clone().into_os_string(),
        files.pid.clone().into_os_string(),
        OsString::from(if options.nfs_v3 { "yes" } else { "no" }),
        files.rpcbind_pid.clone().into_os_string(),
    ]);
    for pool in &options.pools {
        command.push(pool.source.clone().into_os_string());
        command.push(pool.served.clone().into_os_string());
    }
    command
}

/// Two exports at one NFSv4 pseudo path would shadow each other.
fn check_pseudo_paths(exports: &BTreeMap<u16, Export>) -> Result<(), StorageError> {
    let mut seen: BTreeMap<&Path, u16> = BTreeMap::new();
    for export in exports.values() {
        if let Some(other) = seen.insert(&export.pseudo, export.id) {
            return Err(StorageError::Invalid(format!(
                "pseudo path {} is export {other}'s and export {}'s",
                export.pseudo.display(),
                export.id
            )));
        }
    }
    Ok(())
}

fn write_config(
    path: &Path,
    options: &GaneshaOptions,
    exports: &BTreeMap<u16, Export>,
) -> Result<(), StorageError> {
    let core = Core {
        listen: options.listen,
        nfs_v3: options.nfs_v3,
        recovery_dir: &options.state_dir.join("recovery"),
    };
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, render(&core, exports))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| StorageError::file(path, e))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// What the log gained after byte `from`.
fn new_log(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// Kills the rpcbind recorded in the pid file, if that pid is still an rpcbind.
fn kill_rpcbind(pid_file: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_rpcbind = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.starts_with(b"rpcbind"));
    if is_rpcbind {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
}
