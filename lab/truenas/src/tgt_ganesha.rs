//! The real data path: the emulator's iSCSI configuration served by tgt and its NFS shares
//! by nfs-ganesha, both inside the network namespace the lab made (`kiln_lab_core::storage`
//! runs the daemons). Each call gets the whole desired configuration and changes only what
//! differs from what was applied, as TrueNAS re-renders scst.conf / exports and reloads.
//!
//! Mapping (TrueNAS → tgt/ganesha):
//! - a target → a tgt target named `basename:name`; each LUN `n` → tgt LUN `n + 1`, because
//!   tgt keeps LUN 0 for its controller on every target;
//! - who may log in: the initiator group's IQNs as name ACLs; with an empty group ("any
//!   initiator") the target's `auth_networks` as address ACLs, or `ALL` when it has none.
//!   TrueNAS (SCST) admits an initiator only if both its name and its address are allowed;
//!   tgt admits one whose name *or* address is listed (measured by kiln-lab-core), so a
//!   target with both IQNs and networks is served with the IQNs only;
//! - the CHAP account of the group's `auth` tag → an incoming account, its peer user/secret
//!   (`CHAP_MUTUAL`) → an outgoing one;
//! - a share → an EXPORT with the share's id, path and pseudo path = the share's path,
//!   clients = networks + hosts, `maproot_user` → no root squash, `mapall_user` → all
//!   squash, `ro` → read-only;
//! - `NFSV3` among `nfs.config`'s protocols → ganesha with NFSv3 (and rpcbind).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;

use kiln_lab_core::storage::{
    ChapCredential, ChapSpec, Export, ExportAccess, GaneshaOptions, GaneshaServer, Initiator, Lun,
    PoolMount, Squash, TargetSpec, TgtServer, stop_leftovers,
};

use crate::datapath::{DataPath, IscsiTarget, IscsiView, NfsExport, NfsView};
use crate::state::POOL;

/// Where the servers run and where their data lives.
#[derive(Debug, Clone)]
pub struct TgtGaneshaOptions {
    /// The network namespace (it must hold `address`; this process runs inside it too).
    pub namespace: String,
    /// The NAS's address: tgt's portal and ganesha's listen address.
    pub address: IpAddr,
    /// The emulator's data dir (`TruenasConfig::data_dir`): zvols' files and datasets.
    pub data_dir: PathBuf,
    /// The servers' own files: tgtd's log and pid file, ganesha's config, log, pid files
    /// and NFSv4 state — one directory, so that `kiln_lab_core::storage::stop_leftovers`
    /// finds every server a crashed run left.
    pub state_dir: PathBuf,
}

#[derive(Default)]
struct Servers {
    tgt: Option<TgtServer>,
    ganesha: Option<GaneshaServer>,
    nfs_v3: bool,
}

/// tgt and nfs-ganesha behind the emulator.
pub struct TgtGanesha {
    options: TgtGaneshaOptions,
    servers: Mutex<Servers>,
}

impl TgtGanesha {
    /// Servers a crashed earlier run left behind in the same state directory are stopped
    /// first (only processes its pid files name that still run those programs).
    pub fn new(options: TgtGaneshaOptions) -> Self {
        let stopped = stop_leftovers(&options.state_dir);
        if !stopped.is_empty() {
            tracing::warn!("stopped servers an earlier run left running: {stopped:?}");
        }
        Self {
            options,
            servers: Mutex::new(Servers::default()),
        }
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, Servers> {
        self.servers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply_iscsi(&self, view: &IscsiView) -> Result<(), String> {
        let mut servers = self.servers();
        if !view.running {
            if let Some(tgt) = servers.tgt.take() {
                tgt.shutdown().map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        if servers.tgt.is_none() {
            let portal = SocketAddr::new(self.options.address, view.listen_port);
            let log = self.options.state_dir.join("tgtd.log");
            std::fs::create_dir_all(&self.options.state_dir)
                .map_err(|e| format!("{}: {e}", self.options.state_dir.display()))?;
            let tgt = TgtServer::start(&self.options.namespace, portal, &log)
                .map_err(|e| e.to_string())?;
            servers.tgt = Some(tgt);
        }
        let specs: Vec<TargetSpec> = view.targets.iter().map(target_spec).collect();
        match &servers.tgt {
            Some(tgt) => tgt.apply(&specs).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn apply_nfs(&self, view: &NfsView) -> Result<(), String> {
        let mut servers = self.servers();
        let nfs_v3 = view.protocols.iter().any(|p| p == "NFSV3");
        // Stopped, or the protocols changed (NFSv3 needs rpcbind from the start).
        if (!view.running || servers.nfs_v3 != nfs_v3)
            && let Some(ganesha) = servers.ganesha.take()
        {
            ganesha.shutdown();
        }
        if !view.running {
            return Ok(());
        }
        if servers.ganesha.is_none() {
            let options = GaneshaOptions {
                namespace: self.options.namespace.clone(),
                listen: self.options.address,
                state_dir: self.options.state_dir.clone(),
                pools: vec![PoolMount {
                    source: self.options.data_dir.join("mnt").join(POOL),
                    served: PathBuf::from("/mnt").join(POOL),
                }],
                nfs_v3,
            };
            servers.ganesha = Some(GaneshaServer::start(options).map_err(|e| e.to_string())?);
            servers.nfs_v3 = nfs_v3;
        }
        let mut exports = Vec::new();
        for share in &view.exports {
            exports.push(export(share)?);
        }
        match &servers.ganesha {
            Some(ganesha) => ganesha.set_exports(exports).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// A target as tgt should serve it.
fn target_spec(target: &IscsiTarget) -> TargetSpec {
    let mut luns = Vec::new();
    for lun in &target.luns {
        let Some(backing) = &lun.backing_file else {
            tracing::warn!(
                "{} LUN {}: the emulator has no data dir, nothing to serve",
                target.iqn,
                lun.lun
            );
            continue;
        };
        let mut served = Lun::truenas(lun.lun + 1, backing);
        served.serial = Some(lun.serial.chars().take(36).collect());
        served.read_only = lun.read_only;
        luns.push(served);
    }
    let allowed = if !target.initiators.is_empty() {
        target
            .initiators
            .iter()
            .cloned()
            .map(Initiator::Name)
            .collect()
    } else if !target.networks.is_empty() {
        target
            .networks
            .iter()
            .cloned()
            .map(Initiator::Address)
            .collect()
    } else {
        vec![Initiator::Address("ALL".to_string())]
    };
    TargetSpec {
        iqn: target.iqn.clone(),
        luns,
        allowed,
        chap: target.chap.as_ref().map(|chap| ChapSpec {
            user: chap.user.clone(),
            secret: chap.secret.clone(),
            mutual: match (&chap.peer_user, &chap.peer_secret) {
                (Some(user), Some(secret)) => Some(ChapCredential {
                    user: user.clone(),
                    secret: secret.clone(),
                }),
                _ => None,
            },
        }),
    }
}

/// A share as ganesha should export it.
fn export(share: &NfsExport) -> Result<Export, String> {
    let id = u16::try_from(share.id)
        .map_err(|_| format!("share id {} is beyond ganesha's export ids", share.id))?;
    Ok(Export {
        id,
        path: PathBuf::from(&share.path),
        pseudo: PathBuf::from(&share.path),
        clients: share.networks.iter().chain(&share.hosts).cloned().collect(),
        access: if share.read_only {
            ExportAccess::ReadOnly
        } else {
            ExportAccess::ReadWrite
        },
        squash: match (&share.maproot_user, &share.mapall_user) {
            (_, Some(_)) => Squash::AllSquash,
            (Some(user), None) if user == "root" => Squash::NoRootSquash,
            _ => Squash::RootSquash,
        },
    })
}

/// tgtadm and ganesha's reloads block: off the async workers when the runtime allows it.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

impl DataPath for TgtGanesha {
    fn iscsi(&self, view: &IscsiView) -> Result<(), String> {
        blocking(|| self.apply_iscsi(view))
    }

    fn nfs(&self, view: &NfsView) -> Result<(), String> {
        blocking(|| self.apply_nfs(view))
    }

    fn shutdown(&self) {
        let mut servers = self.servers();
        if let Some(tgt) = servers.tgt.take()
            && let Err(e) = tgt.shutdown()
        {
            tracing::warn!("tgtd shutdown: {e}");
        }
        if let Some(ganesha) = servers.ganesha.take() {
            ganesha.shutdown();
        }
    }
}
