//! What Proxmox says exists: the planner's other input. The engine fills
//! it from one `/cluster/resources?type=vm` call plus a config read of each
//! VM that carries this cluster's tag.

use std::collections::{BTreeMap, BTreeSet};

use super::marker::Marker;

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedVm {
    pub vmid: u32,
    pub pve_node: String,
    pub name: String,
    pub tags: BTreeSet<String>,
    pub running: bool,
    /// Proxmox's lock (`clone`, `backup`, …) when one is held.
    pub lock: Option<String>,
    pub template: bool,
    /// Read from the config; present for VMs tagged for this cluster.
    pub config: Option<ObservedConfig>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedConfig {
    pub marker: Option<Marker>,
    pub cores: u32,
    pub memory_mib: u64,
    /// Disk slot (`scsi0`) to size in bytes.
    pub disks: BTreeMap<String, u64>,
    /// The `ipconfig0` cloud-init key, e.g. `ip=10.0.0.11/24,gw=10.0.0.1`.
    pub ipconfig0: Option<String>,
    /// net0's MAC address, upper-case.
    pub mac: Option<String>,
}

impl ObservedConfig {
    /// The IPv4 address with prefix in `ipconfig0`, e.g. `10.0.0.11/24`.
    pub fn ipv4(&self) -> Option<&str> {
        self.ipconfig0
            .as_deref()?
            .split(',')
            .find_map(|part| part.strip_prefix("ip="))
    }

    /// The IPv6 address with prefix in `ipconfig0`.
    pub fn ipv6(&self) -> Option<&str> {
        self.ipconfig0
            .as_deref()?
            .split(',')
            .find_map(|part| part.strip_prefix("ip6="))
    }
}
