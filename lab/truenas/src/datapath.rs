//! The seam between the API and real storage servers. TrueNAS renders its configuration
//! files (scst.conf, exports) from its database after every change and reloads the running
//! service; the emulator does the same through this trait: after each change it hands the
//! whole desired iSCSI or NFS configuration to the data path, which makes a server (tgt,
//! nfs-ganesha) serve exactly that. Without a data path (`NoDataPath`) the API stands alone.

use std::fmt::Debug;
use std::net::IpAddr;
use std::path::PathBuf;

/// A CHAP account a target requires (`iscsi.auth`, referenced by the target group's tag).
#[derive(Clone, PartialEq, Eq)]
pub struct IscsiChap {
    pub user: String,
    pub secret: String,
    /// Mutual CHAP (`CHAP_MUTUAL`): the target's own credentials, if set.
    pub peer_user: Option<String>,
    pub peer_secret: Option<String>,
}

impl Debug for IscsiChap {
    // Secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IscsiChap")
            .field("user", &self.user)
            .field("peer_user", &self.peer_user)
            .finish_non_exhaustive()
    }
}

/// One LUN of a target: an extent mapped by `iscsi.targetextent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiLun {
    pub lun: u32,
    /// The extent's name (SCST device name on TrueNAS).
    pub extent: String,
    /// The zvol, `tank/k8s/pvc-1`.
    pub zvol: String,
    /// Its sparse backing file (under the data dir), when the emulator has one.
    pub backing_file: Option<PathBuf>,
    pub size: u64,
    pub blocksize: u32,
    pub read_only: bool,
    pub serial: String,
    pub naa: String,
}

/// One target, as the initiators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiTarget {
    pub id: u64,
    /// `basename:name`.
    pub iqn: String,
    pub alias: Option<String>,
    pub luns: Vec<IscsiLun>,
    /// Initiator IQNs allowed; empty means any initiator.
    pub initiators: Vec<String>,
    /// Networks allowed (`auth_networks`); empty means any.
    pub networks: Vec<String>,
    pub chap: Option<IscsiChap>,
}

/// The whole iSCSI configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiView {
    pub running: bool,
    pub listen_port: u16,
    /// The portals' listen addresses (`0.0.0.0` means all).
    pub portals: Vec<IpAddr>,
    pub targets: Vec<IscsiTarget>,
}

/// One NFS export (`sharing.nfs`, enabled ones only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsExport {
    pub id: u64,
    /// `/mnt/tank/...`, as clients mount it.
    pub path: String,
    /// Where its data lives (under the data dir), when the emulator has one.
    pub directory: Option<PathBuf>,
    /// Networks (CIDR) and hosts allowed; both empty means everybody.
    pub networks: Vec<String>,
    pub hosts: Vec<String>,
    pub read_only: bool,
    pub maproot_user: Option<String>,
    pub mapall_user: Option<String>,
}

/// The whole NFS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsView {
    pub running: bool,
    /// `NFSV3`, `NFSV4`.
    pub protocols: Vec<String>,
    pub exports: Vec<NfsExport>,
}

/// What serves the API's storage. Called with the emulator's state locked, in the order the
/// changes happen; an error from `iscsi`/`nfs` while the service starts fails the start
/// (`ESERVICESTARTFAILURE`), an error on a reload is logged, as TrueNAS logs a failed reload.
pub trait DataPath: Send + Sync {
    /// The iSCSI configuration changed (or the `iscsitarget` service started or stopped).
    fn iscsi(&self, view: &IscsiView) -> Result<(), String>;
    /// The NFS configuration changed (or the `nfs` service started or stopped).
    fn nfs(&self, view: &NfsView) -> Result<(), String>;
    /// The emulator stops: stop the servers (blocking is fine, it runs off the workers).
    fn shutdown(&self) {}
}

/// No servers: the API alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDataPath;

impl DataPath for NoDataPath {
    fn iscsi(&self, _view: &IscsiView) -> Result<(), String> {
        Ok(())
    }

    fn nfs(&self, _view: &NfsView) -> Result<(), String> {
        Ok(())
    }
}
