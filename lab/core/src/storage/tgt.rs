//! tgt, the user-space iSCSI target: one `tgtd` per server inside a network namespace, on one
//! portal, driven with `tgtadm`. Each server has its own control port (`-C`): tgtd's
//! management socket `/run/tgtd/socket.<port>` lives on the shared filesystem, so several
//! servers (and `tgtadm` run from outside the namespace) need distinct ports.
//!
//! Targets are named by IQN; tgtd's numeric target ids stay inside this module.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::StorageError;
use super::daemon::{self, Daemon};
use super::tgt_control;
use super::tgt_show::{TargetState, parse_targets};

/// One `tgtadm` call.
const TGTADM_LIMIT: Duration = Duration::from_secs(10);
/// From spawn until tgtd answers on its control socket with the portal bound.
const READY_WAIT: Duration = Duration::from_secs(10);
/// After `delete --mode system`, how long tgtd may take to exit before SIGKILL.
const EXIT_WAIT: Duration = Duration::from_secs(5);
pub(super) const TGTD_PID: &str = "tgtd.pid";
/// What tgtd logs when another tgtd holds the control port.
const PORT_TAKEN: &str = "another tgtd is using";
/// Who may log in to a target (tgtadm `--op bind --mode target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initiator {
    /// An address or a network (`10.77.0.21`, `10.77.0.0/24`), or `ALL`.
    Address(String),
    /// An initiator IQN.
    Name(String),
}

/// Which side of CHAP an account is: `Incoming` authenticates the initiator; `Outgoing` is
/// the target's own credential for mutual CHAP (TrueNAS's `peeruser`/`peersecret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapDirection {
    Incoming,
    Outgoing,
}

/// A LUN backed by a file (a zvol's sparse file in the lab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lun {
    /// 1 or more: tgt keeps LUN 0 for its controller on every target.
    pub id: u32,
    pub backing: PathBuf,
    /// SCSI INQUIRY vendor (at most 8 characters).
    pub vendor_id: String,
    /// SCSI INQUIRY product (at most 16 characters).
    pub product_id: String,
    /// SCSI serial (TrueNAS's extent `serial`); tgt makes one up when `None`.
    pub serial: Option<String>,
    pub read_only: bool,
}

impl Lun {
    /// As TrueNAS presents an extent: vendor `TrueNAS`, product `iSCSI Disk`.
    pub fn truenas(id: u32, backing: impl Into<PathBuf>) -> Self {
        Self {
            id,
            backing: backing.into(),
            vendor_id: "TrueNAS".to_string(),
            product_id: "iSCSI Disk".to_string(),
            serial: None,
            read_only: false,
        }
    }
}

/// A running tgtd. Dropping it kills tgtd (SIGKILL) and removes its control socket;
/// `shutdown` is the orderly way.
pub struct TgtServer {
    namespace: String,
    portal: SocketAddr,
    control_port: u16,
    pid_file: PathBuf,
    daemon: Daemon,
    /// IQN → tgtd's target id.
    tids: Mutex<BTreeMap<String, u32>>,
    /// CHAP user → secret, of the accounts made here (tgtd never shows a secret back, and
    /// `apply` must know whether one changed). Never logged: `TgtServer` has no `Debug`.
    accounts: Mutex<BTreeMap<String, String>>,
}

impl TgtServer {
    /// Starts tgtd inside `namespace` (which must hold `portal`'s address); returns once
    /// tgtd answers with the portal bound. Its output is appended to `log`, and its pid
    /// written beside it as `tgtd.pid` (for `stop_leftovers` after a crash of the caller).
    pub fn start(namespace: &str, portal: SocketAddr, log: &Path) -> Result<Self, StorageError> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::file(dir, e))?;
        }
        let mut last_error = None;
        for control_port in tgt_control::candidates() {
            match Self::start_on(namespace, portal, log, control_port) {
                Ok(server) => return Ok(server),
                // Another tgtd took the port between our look and our start: the next one.
                Err(e @ StorageError::NotReady { .. }) if e.to_string().contains(PORT_TAKEN) => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StorageError::NotReady {
            server: "tgtd",
            namespace: namespace.to_string(),
            waited: Duration::ZERO,
            log: format!("{} control ports tried, all in use", tgt_control::TRIES),
        }))
    }

    fn start_on(
        namespace: &str,
        portal: SocketAddr,
        log: &Path,
        control_port: u16,
    ) -> Result<Self, StorageError> {
        let command = [
            "tgtd".to_string(),
            "-f".to_string(),
            "-C".to_string(),
            control_port.to_string(),
            "--iscsi".to_string(),
            format!("portal={portal}"),
        ];
        let daemon = Daemon::spawn("tgtd", namespace, &command, log)?;
        // tgtd writes no pid file in the foreground; `ip netns exec` execs, so this is its pid.
        let pid_file = log.with_file_name(TGTD_PID);
        std::fs::write(&pid_file, format!("{}\n", daemon.pid()))
            .map_err(|e| StorageError::file(&pid_file, e))?;
        let mut server = Self {
            namespace: namespace.to_string(),
            portal,
            control_port,
            pid_file,
            daemon,
            tids: Mutex::new(BTreeMap::new()),
            accounts: Mutex::new(BTreeMap::new()),
        };
        let started = Instant::now();
        loop {
            if !server.daemon.running() {
                return Err(server.not_ready(started));
            }
            // `show --mode portal` answers once the control socket is up; the portal is
            // listed once tgtd bound it.
            // Until tgtd holds the port's lock, a `tgtadm` could reach another tgtd.
            let answered = if tgt_control::held_by(control_port, server.daemon.pid()) {
                server
                    .tgtadm(
                        "show portals",
                        "the system",
                        &["--op", "show", "--mode", "portal"],
                    )
                    .ok()
            } else {
                None
            };
            if let Some(listing) = answered {
                if listing.contains(&format!("Portal: {portal},")) {
                    tracing::debug!(namespace, %portal, control_port, elapsed = ?started.elapsed(), "tgtd ready");
                    return Ok(server);
                }
                // tgtd could not bind the portal and listens on every address instead.
                server.daemon.kill();
                return Err(server.not_ready(started));
            }
            if started.elapsed() > READY_WAIT {
                server.daemon.kill();
                return Err(server.not_ready(started));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn not_ready(&self, started: Instant) -> StorageError {
        StorageError::NotReady {
            server: "tgtd",
            namespace: self.namespace.clone(),
            waited: started.elapsed(),
            log: self.daemon.log_tail(),
        }
    }

    pub fn portal(&self) -> SocketAddr {
        self.portal
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// tgtd's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// tgtd's log file.
    pub fn log(&self) -> &Path {
        self.daemon.log()
    }

    /// A new target (no LUN but tgt's controller, nobody allowed until `allow`).
    pub fn add_target(&self, iqn: &str) -> Result<(), StorageError> {
        check_word("IQN", iqn)?;
        let tid = {
            let mut tids = self.lock_tids();
            if tids.contains_key(iqn) {
                return Err(StorageError::Tgtadm {
                    operation: "add target",
                    target: iqn.to_string(),
                    stderr: "the target exists already".to_string(),
                });
            }
            let tid = tids.values().max().map_or(1, |max| max + 1);
            // Reserved now so that a concurrent add picks another id.
            tids.insert(iqn.to_string(), tid);
            tid
        };
        let tid_text = tid.to_string();
        let made = self.tgtadm(
            "add target",
            iqn,
            &[
                "--op",
                "new",
                "--mode",
                "target",
                "--tid",
                &tid_text,
                "--targetname",
                iqn,
            ],
        );
        if made.is_err() {
            self.lock_tids().remove(iqn);
        }
        made.map(drop)
    }

    /// Deletes the target even while initiators are logged in (`--force`).
    pub fn remove_target(&self, iqn: &str) -> Result<(), StorageError> {
        let tid = self.tid(iqn)?;
        self.tgtadm(
            "remove target",
            iqn,
            &[
                "--op", "delete", "--mode", "target", "--tid", &tid, "--force",
            ],
        )?;
        self.lock_tids().remove(iqn);
        Ok(())
    }

    /// Adds a LUN backed by `lun.backing` (read and written in place: `rdwr`), then sets its
    /// INQUIRY identity.
    pub fn add_lun(&self, iqn: &str, lun: &Lun) -> Result<(), StorageError> {
        let tid = self.tid(iqn)?;
        if lun.id == 0 {
            return Err(StorageError::Invalid(format!(
                "LUN 0 of {iqn}: tgt keeps LUN 0 for its controller; use 1 or more"
            )));
        }
        check_identity("vendor_id", &lun.vendor_id, 8)?;
        check_identity("product_id", &lun.product_id, 16)?;
        if let Some(serial) = &lun.serial {
            check_identity("serial", serial, 36)?;
        }
        let lun_text = lun.id.to_string();
        let mut args: Vec<OsString> = ["--op", "new", "--mode", "logicalunit", "--tid", &tid]
            .into_iter()
            .chain(["--lun", &lun_text, "--bstype", "rdwr", "--backing-store"])
            .map(OsString::from)
            .collect();
        args.push(lun.backing.clone().into_os_string());
        self.tgtadm("add LUN", iqn, &args)?;
        let mut params = format!("vendor_id={},product_id={}", lun.vendor_id, lun.product_id);
        if let Some(serial) = &lun.serial {
            params.push_str(&format!(",scsi_sn={serial}"));
        }
        if lun.read_only {
            params.push_str(",readonly=1");
        }
        let identity = self.tgtadm(
            "set LUN identity",
            iqn,
            &[
                "--op",
                "update",
                "--mode",
                "logicalunit",
                "--tid",
                &tid,
                "--lun",
                &lun_text,
                "--params",
                &params,
            ],
        );
        if let Err(e) = identity {
            // No half-made LUN: without its identity a guest would see tgt's own vendor.
            let _ = self.remove_lun(iqn, lun.id);
            return Err(e);
        }
        Ok(())
    }

    pub fn remove_lun(&self, iqn: &str, lun_id: u32) -> Result<(), StorageError> {
        let tid = self.tid(iqn)?;
        let lun_text = lun_id.to_string();
        self.tgtadm(
            "remove LUN",
            iqn,
            &[
                "--op",
                "delete",
                "--mode",
                "logicalunit",
                "--tid",
                &tid,
                "--lun",
                &lun_text,
            ],
        )
        .map(drop)
    }

    /// Lets an initiator (by address or by name) log in to the target.
    pub fn allow(&self, iqn: &str, initiator: &Initiator) -> Result<(), StorageError> {
        self.acl("bind", "allow initiator", iqn, initiator)
    }

    pub fn disallow(&self, iqn: &str, initiator: &Initiator) -> Result<(), StorageError> {
        self.acl("unbind", "disallow initiator", iqn, initiator)
    }

    fn acl(
        &self,
        op: &str,
        operation: &'static str,
        iqn: &str,
        initiator: &Initiator,
    ) -> Result<(), StorageError> {
        let tid = self.tid(iqn)?;
        let (flag, value) = match initiator {
            Initiator::Address(address) => ("--initiator-address", address),
            Initiator::Name(name) => ("--initiator-name", name),
        };
        check_word("initiator", value)?;
        self.tgtadm(
            operation,
            iqn,
            &["--op", op, "--mode", "target", "--tid", &tid, flag, value],
        )
        .map(drop)
    }

    /// A CHAP account on the server (bind it to targets with `bind_chap`). tgtadm takes the
    /// secret only as a command-line argument (`--password`; tgt has no file or stdin form),
    /// so for the few milliseconds tgtadm runs it is readable in its `/proc/<pid>/cmdline` by
    /// other local users; it is never logged, nor put in an error.
    pub fn add_chap_account(&self, user: &str, secret: &str) -> Result<(), StorageError> {
        check_word("CHAP user", user)?;
        if secret.is_empty() || secret.chars().any(char::is_control) {
            return Err(StorageError::Invalid(format!(
                "CHAP secret of {user}: empty or with control characters"
            )));
        }
        self.tgtadm(
            "add CHAP account",
            user,
            &[
                "--op",
                "new",
                "--mode",
                "account",
                "--user",
                user,
                "--password",
                secret,
            ],
        )?;
        lock(&self.accounts).insert(user.to_string(), secret.to_string());
        Ok(())
    }

    /// Deletes the account (tgtd unbinds it from every target).
    pub fn remove_chap_account(&self, user: &str) -> Result<(), StorageError> {
        self.tgtadm(
            "remove CHAP account",
            user,
            &["--op", "delete", "--mode", "account", "--user", user],
        )?;
        lock(&self.accounts).remove(user);
        Ok(())
    }

    /// The secret an account made here has (`None`: no such account).
    pub(super) fn chap_secret(&self, user: &str) -> Option<String> {
        lock(&self.accounts).get(user).cloned()
    }

    /// The users of the accounts made here.
    pub(super) fn chap_users(&self) -> Vec<String> {
        lock(&self.accounts).keys().cloned().collect()
    }

    /// Requires CHAP with `user` to log in to the target (or, `Outgoing`, answers the
    /// initiator's mutual-CHAP challenge with it).
    pub fn bind_chap(
        &self,
        iqn: &str,
        user: &str,
        direction: ChapDirection,
    ) -> Result<(), StorageError> {
        self.chap_binding("bind", "bind CHAP account", iqn, user, direction)
    }

    pub fn unbind_chap(
        &self,
        iqn: &str,
        user: &str,
        direction: ChapDirection,
    ) -> Result<(), StorageError> {
        self.chap_binding("unbind", "unbind CHAP account", iqn, user, direction)
    }

    fn chap_binding(
        &self,
        op: &str,
        operation: &'static str,
        iqn: &str,
        user: &str,
        direction: ChapDirection,
    ) -> Result<(), StorageError> {
        let tid = self.tid(iqn)?;
        let mut args = vec![
            "--op", op, "--mode", "account", "--tid", &tid, "--user", user,
        ];
        if direction == ChapDirection::Outgoing {
            args.push("--outgoing");
        }
        self.tgtadm(operation, iqn, &args).map(drop)
    }

    /// Every target tgtd holds, as it reports them.
    pub fn targets(&self) -> Result<Vec<TargetState>, StorageError> {
        let listing = self.tgtadm(
            "show targets",
            "the system",
            &["--op", "show", "--mode", "target"],
        )?;
        Ok(parse_targets(&listing))
    }

    /// Deletes every target (`--force`: sessions are dropped), then the system, which makes
    /// tgtd exit (it ignores SIGTERM while targets exist); SIGKILL if it has not exited
    /// within 5 s. The control socket files are removed.
    pub fn shutdown(mut self) -> Result<(), StorageError> {
        let mut first_error = None;
        let iqns: Vec<String> = self.lock_tids().keys().cloned().collect();
        for iqn in iqns {
            if let Err(e) = self.remove_target(&iqn) {
                first_error.get_or_insert(e);
            }
        }
        let system = self.tgtadm(
            "stop",
            "the system",
            &["--op", "delete", "--mode", "system"],
        );
        if let Err(e) = system {
            first_error.get_or_insert(e);
        }
        if !self.daemon.wait_exit(EXIT_WAIT) {
            tracing::warn!(pid = self.daemon.pid(), "tgtd did not exit; killing it");
            self.daemon.kill();
        }
        tgt_control::remove_files(self.control_port);
        let _ = std::fs::remove_file(&self.pid_file);
        first_error.map_or(Ok(()), Err)
    }

    fn lock_tids(&self) -> MutexGuard<'_, BTreeMap<String, u32>> {
        lock(&self.tids)
    }

    fn tid(&self, iqn: &str) -> Result<String, StorageError> {
        self.lock_tids()
            .get(iqn)
            .map(u32::to_string)
            .ok_or_else(|| StorageError::UnknownTarget(iqn.to_string()))
    }

    /// Runs `tgtadm -C <port> --lld iscsi ARGS`; its stdout, or its stderr in the error.
    fn tgtadm<S: AsRef<std::ffi::OsStr>>(
        &self,
        operation: &'static str,
        target: &str,
        args: &[S],
    ) -> Result<String, StorageError> {
        let mut full: Vec<OsString> = ["-C", &self.control_port.to_string(), "--lld", "iscsi"]
            .map(OsString::from)
            .to_vec();
        full.extend(args.iter().map(|arg| arg.as_ref().to_os_string()));
        let output = daemon::run("tgtadm", &full, TGTADM_LIMIT)?;
        if output.status.success() {
            tracing::debug!(operation, target, "tgtadm");
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(StorageError::Tgtadm {
                operation,
                target: target.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}

/// The maps behind these locks change by single inserts and removes, so a panic while one
/// was held cannot leave it half-updated: a poisoned lock is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for TgtServer {
    fn drop(&mut self) {
        // The Daemon field kills tgtd as it drops; these files would outlive it.
        tgt_control::remove_files(self.control_port);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// A name tgtadm takes as one argument: not empty, no whitespace or control characters.
fn check_word(what: &str, value: &str) -> Result<(), StorageError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StorageError::Invalid(format!(
            "{what} {value:?}: empty or with whitespace"
        )));
    }
    Ok(())
}

/// A `--params` value: tgtadm splits on `,` and `=`, so neither may appear.
fn check_identity(what: &str, value: &str, max: usize) -> Result<(), StorageError> {
    if value.is_empty()
        || value.len() > max
        || value
            .chars()
            .any(|c| c == ',' || c == '=' || c.is_control())
    {
        return Err(StorageError::Invalid(format!(
            "{what} {value:?}: 1 to {max} characters, without ',' or '='"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truenas_luns_carry_truenas_identity() {
        let lun = Lun::truenas(1, "/tmp/zvol");
        assert_eq!(
            (lun.vendor_id.as_str(), lun.product_id.as_str()),
            ("TrueNAS", "iSCSI Disk")
        );
        assert!(check_identity("vendor_id", &lun.vendor_id, 8).is_ok());
        assert!(check_identity("product_id", &lun.product_id, 16).is_ok());
    }

    #[test]
    fn identities_that_tgtadm_would_split_are_refused() {
        assert!(check_identity("product_id", "a,b", 16).is_err());
        assert!(check_identity("product_id", "a=b", 16).is_err());
        assert!(check_identity("vendor_id", "TooLongVendor", 8).is_err());
        assert!(check_word("IQN", "iqn.x y").is_err());
        assert!(check_word("IQN", "").is_err());
    }
}
