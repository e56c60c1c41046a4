//! What Proxmox has, as the planner needs it: one `/cluster/resources`
//! call for every VM, then a config read of each VM carrying this cluster's
//! tag, and of untagged VMs named like a node (a clone that a killed run
//! left before tagging it carries kiln's marker; a foreign VM does not).
//! Nothing here writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kiln_inventory::Inventory;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::plan::{Marker, ObservedConfig, ObservedVm, ownership_tag};
use kiln_proxmox::{ProxmoxClient, VmConfig, VmResource};

/// How many config reads run at once: enough that a large cluster is not
/// read one VM after another, few enough not to crowd pveproxy's workers.
const CONFIG_READS: usize = 8;

pub async fn observe(
    client: &ProxmoxClient,
    inventory: &Inventory,
) -> Result<Vec<ObservedVm>, kiln_proxmox::Error> {
    let tag = ownership_tag(inventory.cluster.name.as_str());
    let node_names: BTreeSet<&str> = inventory
        .nodes
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    let mut observed = Vec::new();
    let mut to_read = Vec::new();
    for vm in client
        .cluster_vms()
        .await?
        .into_iter()
        .filter(VmResource::is_qemu)
    {
        let named_like_a_node = vm
            .name
            .as_deref()
            .is_some_and(|name| node_names.contains(name));
        if (vm.has_tag(&tag) || named_like_a_node) && !vm.template {
            to_read.push((observed.len(), vm.node.clone(), vm.vmid));
        }
        observed.push(ObservedVm {
            vmid: vm.vmid,
            running: vm.status.as_deref() == Some("running"),
            tags: vm.tags.iter().map(|tag| tag.to_ascii_lowercase()).collect(),
            name: vm.name.unwrap_or_default(),
            pve_node: vm.node,
            lock: vm.lock,
            template: vm.template,
            config: None,
        });
    }
    for (index, config) in read_configs(client, to_read).await? {
        take_config(&mut observed[index], &config);
    }
    Ok(observed)
}

/// Adds a VM's config to what the listing said of it, tags included: the
/// tags must come from the same read as the marker. `/cluster/resources`
/// was read earlier, and a task a killed run left behind may have tagged the
/// VM in between: its marker then says `ready`, not `cloned`, and the
/// listing's tags alone would call kiln's own VM foreign.
fn take_config(vm: &mut ObservedVm, config: &VmConfig) {
    vm.tags = config
        .tags()
        .iter()
        .map(|tag| tag.to_ascii_lowercase())
        .collect();
    vm.config = Some(observed_config(config));
}

/// Reads the configs of `(index, node, vmid)`, [`CONFIG_READS`] at a time;
/// the first error ends the reads (the rest are dropped unfinished).
async fn read_configs(
    client: &ProxmoxClient,
    to_read: Vec<(usize, String, u32)>,
) -> Result<Vec<(usize, VmConfig)>, kiln_proxmox::Error> {
    let slots = Arc::new(Semaphore::new(CONFIG_READS));
    let mut reads = JoinSet::new();
    for (index, node, vmid) in to_read {
        let (client, slots) = (client.clone(), slots.clone());
        reads.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let config = client.vm_config(&node, vmid).await?;
            Ok::<_, kiln_proxmox::Error>((index, config))
        });
    }
    let mut configs = Vec::new();
    while let Some(read) = reads.join_next().await {
        match read {
            Ok(result) => configs.push(result?),
            // Nothing aborts a read, so only a panic (a bug) ends one early:
            // passed on as if the read had run here.
            Err(error) => {
                if let Ok(panic) = error.try_into_panic() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
    Ok(configs)
}

/// The parts of a VM config the planner compares.
pub fn observed_config(config: &VmConfig) -> ObservedConfig {
    ObservedConfig {
        marker: config.description().as_deref().and_then(Marker::parse),
        cores: config
            .get("cores")
            .and_then(|cores| cores.parse().ok())
            .unwrap_or(1),
        memory_mib: config
            .get("memory")
            .and_then(|memory| memory.parse().ok())
            .unwrap_or(512),
        disks: config
            .0
            .keys()
            .filter(|key| is_disk_slot(key))
            .filter_map(|key| {
                let value = config.get(key)?;
                let is_media = value.contains("media=cdrom") || value.contains("cloudinit");
                (!is_media).then(|| disk_size(&value).map(|size| (key.clone(), size)))?
            })
            .collect::<BTreeMap<_, _>>(),
        ipconfig0: config.get("ipconfig0"),
        mac: config.get("net0").as_deref().and_then(net_mac),
    }
}

fn is_disk_slot(key: &str) -> bool {
    ["scsi", "virtio", "sata", "ide"].iter().any(|bus| {
        key.strip_prefix(bus)
            .is_some_and(|index| !index.is_empty() && index.chars().all(|c| c.is_ascii_digit()))
    })
}

/// `local-lvm:vm-100-disk-0,size=8G` → bytes.
fn disk_size(value: &str) -> Option<u64> {
    let size = value
        .split(',')
        .find_map(|part| part.strip_prefix("size="))?;
    let (number, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let power = match unit {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1024u64.pow(power))
}

/// `virtio=BC:24:11:00:00:01,bridge=vmbr0` → `BC:24:11:00:00:01`.
fn net_mac(value: &str) -> Option<String> {
    let (_, mac) = value.split(',').next()?.split_once('=')?;
    Some(mac.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> VmConfig {
        VmConfig(
            pairs
                .iter()
                .map(|(key, value)| {
                    (
                        key.to_string(),
                        serde_json::Value::String(value.to_string()),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn tags_come_from_the_config_read_with_the_marker_not_the_earlier_listing() {
        let mut vm = ObservedVm {
            vmid: 100,
            running: false,
            tags: BTreeSet::new(),
            name: "lab1".to_owned(),
            pve_node: "pve1".to_owned(),
            lock: None,
            template: false,
            config: None,
        };
        take_config(
            &mut vm,
            &config(&[
                ("tags", "kiln;Kiln-Lab"),
                (
                    "description",
                    "kiln:v1 cluster=lab node=lab1 stage=ready fingerprint=25da066e49fc1742 \
                     image=debian-12 template=9000 kiln=0.1.0 run=01a23737-823f-7798-a78b-c5c08c893a19",
                ),
            ]),
        );
        assert_eq!(
            vm.tags,
            BTreeSet::from(["kiln".to_owned(), "kiln-lab".to_owned()])
        );
        let marker = vm.config.and_then(|config| config.marker).unwrap();
        assert_eq!(marker.stage, crate::plan::Stage::Ready);
    }

    #[test]
    fn reads_disks_but_not_the_cloud_init_drive_or_cdroms() {
        let observed = observed_config(&config(&[
            ("scsi0", "local-lvm:vm-100-disk-0,size=8G"),
            ("scsi1", "local-lvm:vm-100-disk-1,size=512M"),
            ("ide2", "local-lvm:vm-100-cloudinit,media=cdrom"),
            ("ide0", "none,media=cdrom"),
            ("scsihw", "virtio-scsi-single"),
            ("net0", "virtio=bc:24:11:aa:bb:cc,bridge=vmbr0"),
            ("cores", "4"),
            ("memory", "2048"),
            ("ipconfig0", "ip=10.0.0.11/24,gw=10.0.0.1"),
        ]));
        assert_eq!(
            observed.disks,
            BTreeMap::from([
                ("scsi0".to_owned(), 8 << 30),
                ("scsi1".to_owned(), 512 << 20)
            ])
        );
        assert_eq!(observed.mac.as_deref(), Some("BC:24:11:AA:BB:CC"));
        assert_eq!((observed.cores, observed.memory_mib), (4, 2048));
        assert_eq!(observed.ipv4(), Some("10.0.0.11/24"));
        assert_eq!(observed.marker, None);
    }

    #[test]
    fn the_real_pve_config_fixture_reads_cleanly() {
        let text =
            include_str!("../../../clients/proxmox/fixtures/pve62_qemu_config_cloudinit.json");
        let body: serde_json::Value = serde_json::from_str(text).expect("fixture");
        let config: VmConfig = serde_json::from_value(body["data"].clone()).expect("config");
        let observed = observed_config(&config);
        assert!(!observed.disks.is_empty(), "{observed:?}");
        assert!(
            observed.disks.keys().all(|slot| slot != "ide0"),
            "the cloud-init drive is not a disk: {observed:?}"
        );
    }
}
