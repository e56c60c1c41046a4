//! What the simulated cluster knows: VMs with their PVE configs, volumes on the two local
//! storages of each node, tasks, and cicustom snippets.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::RngCore;

use super::task::Task;
use crate::cloudinit::NoCloud;

/// A storage of every node, like a default PVE install (`local` dir, `local-lvm` thin pool).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageDef {
    pub(crate) id: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) content: &'static [&'static str],
    pub(crate) total: u64,
}

pub(crate) const STORAGES: &[StorageDef] = &[
    StorageDef {
        id: "local",
        kind: "dir",
        content: &["iso", "vztmpl", "snippets", "import"],
        total: 100 << 30,
    },
    StorageDef {
        id: "local-lvm",
        kind: "lvmthin",
        content: &["images", "rootdir"],
        total: 500 << 30,
    },
];

pub(crate) fn storage(id: &str) -> Option<&'static StorageDef> {
    STORAGES.iter().find(|s| s.id == id)
}

/// A VM as PVE keeps it: its config file (keys to raw values) plus runtime state.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub(crate) vmid: u32,
    pub(crate) node: String,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) running: bool,
    pub(crate) pid: Option<u32>,
    pub(crate) started_at: Option<Instant>,
    /// The NoCloud seed generated at the last start.
    pub(crate) seed: Option<NoCloud>,
    /// Changes made while running that wait for the next start (`None`: a pending delete).
    pub(crate) pending: BTreeMap<String, Option<String>>,
}

impl Vm {
    pub(crate) fn new(vmid: u32, node: &str, config: BTreeMap<String, String>) -> Self {
        Self {
            vmid,
            node: node.to_string(),
            config,
            running: false,
            pid: None,
            started_at: None,
            seed: None,
            pending: BTreeMap::new(),
        }
    }

    /// The config with pending changes applied (what `GET .../config` shows by default).
    pub(crate) fn merged_config(&self) -> BTreeMap<String, String> {
        let mut config = self.config.clone();
        for (key, value) in &self.pending {
            match value {
                Some(value) => config.insert(key.clone(), value.clone()),
                None => config.remove(key),
            };
        }
        config
    }

    /// Applies pending changes, as qemu-server does at start.
    pub(crate) fn apply_pending(&mut self) {
        self.config = self.merged_config();
        self.pending.clear();
    }

    pub(crate) fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub(crate) fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }

    pub(crate) fn name(&self) -> String {
        self.config
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }
}

/// A volume on a node's storage.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub(crate) node: String,
    pub(crate) storage: String,
    pub(crate) volid: String,
    pub(crate) content: String,
    pub(crate) format: String,
    pub(crate) size: u64,
    pub(crate) vmid: Option<u32>,
    pub(crate) parent: Option<String>,
    pub(crate) ctime: u64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) vms: BTreeMap<u32, Vm>,
    pub(crate) volumes: Vec<Volume>,
    pub(crate) tasks: HashMap<String, Task>,
    /// cicustom snippets by volume ID (`local:snippets/x.yaml`), present on every node.
    pub(crate) snippets: BTreeMap<String, String>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) next_pid: u32,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl State {
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self {
            vms: BTreeMap::new(),
            volumes: Vec::new(),
            tasks: HashMap::new(),
            snippets: BTreeMap::new(),
            rng,
            next_pid: 4000,
        }
    }

    pub(crate) fn pid(&mut self) -> u32 {
        self.next_pid += 1 + (self.rng.next_u32() % 7);
        self.next_pid
    }

    /// A MAC in Proxmox's OUI `BC:24:11`, as PVE 8+ generates.
    pub(crate) fn random_mac(&mut self) -> String {
        let b = self.rng.next_u32().to_be_bytes();
        format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
    }

    pub(crate) fn volume(&self, node: &str, volid: &str) -> Option<&Volume> {
        self.volumes
            .iter()
            .find(|v| v.volid == volid && v.node == node)
    }

    /// The next free `vm-N-disk-K` name on a storage of a node.
    pub(crate) fn next_disk_name(&self, node: &str, storage: &str, vmid: u32) -> String {
        (0..)
            .map(|k| format!("vm-{vmid}-disk-{k}"))
            .find(|name| {
                !self.volumes.iter().any(|v| {
                    v.node == node
                        && v.storage == storage
                        && (v.volid.ends_with(&format!(":{name}"))
                            || v.volid.ends_with(&format!("/{name}"))
                            || v.volid
                                .ends_with(&format!(":{}", name.replacen("vm-", "base-", 1))))
                })
            })
            .unwrap_or_default()
    }

    pub(crate) fn add_volume(&mut self, volume: Volume) {
        self.volumes
            .retain(|v| !(v.node == volume.node && v.volid == volume.volid));
        self.volumes.push(volume);
    }
}
