//! The steps of a node's pipeline, each one Proxmox operation (or wait)
//! that is safe to run again after an interruption.

use std::net::IpAddr;
use std::sync::Arc;

use kiln_cloud_init::{CloudConfig, Generation, ProxmoxConfig, RenderInput};

use super::context::{Context, NodeSlot};
use crate::plan::{DesiredVm, KILN_TAG, Marker, Stage, ownership_tag};
use kiln_proxmox::{
    AddressFamily, AgentOption, CloneOptions, DeleteOptions, NetDevice, VmConfigUpdate,
};

fn marker(context: &Context, wanted: &DesiredVm, stage: Stage) -> Marker {
    Marker {
        cluster: context.inventory.cluster.name.to_string(),
        node: wanted.node.clone(),
        stage,
        fingerprint: wanted.fingerprint.clone(),
        image: wanted.image.clone(),
        template_vmid: wanted.template_vmid,
        kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
        run: context.run.to_string(),
    }
}

/// Clones the node's template; the VM is marked `cloned` until configured,
/// so an interrupted run replaces it instead of trusting it.
pub async fn clone(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let client = &context.client;
    let options = CloneOptions {
        name: Some(wanted.node.clone()),
        description: Some(marker(&context, &wanted, Stage::Cloned).description()),
        pool: context
            .inventory
            .proxmox
            .as_ref()
            .and_then(|proxmox| proxmox.pool.clone()),
        ..CloneOptions::default()
    };
    let node = wanted.pve_node.as_str();
    let vmid = match wanted.vmid {
        Some(vmid) => {
            client
                .run(|| client.clone_vm(node, wanted.template_vmid, vmid, &options))
                .await
                .map_err(|error| error.to_string())?;
            vmid
        }
        None => {
            client
                .clone_new(node, wanted.template_vmid, &options, None)
                .await
                .map_err(|error| error.to_string())?
                .0
        }
    };
    slot.set(vmid);
    Ok(())
}

/// Writes every setting kiln owns, then marks the VM `ready`.
pub async fn configure(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let vmid = slot.vmid()?;
    let client = &context.client;
    let inventory = &context.inventory;
    let node = inventory
        .node(&wanted.node)
        .ok_or_else(|| format!("node `{}` is not in the inventory", wanted.node))?;
    let input = RenderInput {
        authorized_keys: context.authorized_keys.clone(),
        generation: context
            .run
            .simple()
            .to_string()
            .parse::<Generation>()
            .map_err(|error| error.to_string())?,
        ..RenderInput::default()
    };
    let user_data = CloudConfig::for_node(inventory, node, &input);
    let cloud_init = ProxmoxConfig::native(inventory, node, &input, &user_data);
    let network = &inventory.network;
    let current = client
        .vm_config(&wanted.pve_node, vmid)
        .await
        .map_err(|error| error.to_string())?;
    // Without a MAC in net0, Proxmox makes a new one: keep the VM's own
    // unless the inventory fixes it (the guest matches its NIC by MAC).
    let net0 = NetDevice {
        mac: wanted.mac.clone().or_else(|| current.mac(0)),
        vlan_tag: network.vlan,
        ..NetDevice::virtio(network.bridge.clone())
    };
    let tags: Vec<&str> = wanted.tags.iter().map(String::as_str).collect();
    let mut update = VmConfigUpdate::new()
        .name(&wanted.node)
        .cores(wanted.cores)
        .memory_mib(wanted.memory_mib)
        .net(0, &net0)
        .agent(AgentOption {
            enabled: true,
            fstrim_cloned_disks: None,
        })
        .tags(&tags)
        .description(&marker(&context, &wanted, Stage::Ready).description());
    for (key, value) in cloud_init.params() {
        update = match key {
            "delete" => value
                .split(',')
                .fold(update, |update, key| update.delete(key)),
            _ => update.raw(key, &value),
        };
    }

    for disk in wanted
        .disks
        .iter()
        .filter(|disk| current.get(&disk.slot).is_none())
    {
        update = update.raw(&disk.slot, &format!("{}:{}", disk.storage, disk.size_gib));
    }
    client
        .run(|| client.update_config(&wanted.pve_node, vmid, &update))
        .await
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Grows every disk the inventory sizes above what it is (never shrinks).
pub async fn resize(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let vmid = slot.vmid()?;
    let client = &context.client;
    let current = crate::engine::observed_config(
        &client
            .vm_config(&wanted.pve_node, vmid)
            .await
            .map_err(|error| error.to_string())?,
    );
    for disk in &wanted.disks {
        let wanted_bytes = disk.size_gib * 1024 * 1024 * 1024;
        if current
            .disks
            .get(&disk.slot)
            .is_some_and(|&size| size < wanted_bytes)
        {
            let size = format!("{}G", disk.size_gib);
            client
                .run(|| client.resize(&wanted.pve_node, vmid, &disk.slot, &size))
                .await
                .map_err(|error| error.to_string())?;
        }
    }
    Ok(())
}

/// Starts the VM unless it already runs ("already running" is success).
pub async fn start(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let vmid = slot.vmid()?;
    context
        .client
        .ensure_running(&wanted.pve_node, vmid)
        .await
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Waits until the guest agent reports the node's address, and checks it is
/// the one the inventory gives.
pub async fn wait_for_address(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let vmid = slot.vmid()?;
    let address = context
        .client
        .wait_for_address(
            &wanted.pve_node,
            vmid,
            AddressFamily::V4,
            context.timeouts.boot,
        )
        .await
        .map_err(|error| format!("node `{}`: {error}", wanted.node))?;
    let expected = wanted.address();
    if address
        != expected
            .parse::<IpAddr>()
            .map_err(|error| error.to_string())?
    {
        return Err(format!(
            "node `{}` came up with {address}, but the inventory gives {expected}: cloud-init did not apply the address",
            wanted.node
        ));
    }
    Ok(())
}

/// Stops (hard) and destroys a VM, after checking once more that it is
/// this cluster's: kiln never touches a VM it did not make.
pub async fn destroy(
    context: Arc<Context>,
    pve_node: String,
    node: String,
    vmid: u32,
) -> Result<(), String> {
    let client = &context.client;
    let cluster = context.inventory.cluster.name.to_string();
    let config = client
        .vm_config(&pve_node, vmid)
        .await
        .map_err(|error| error.to_string())?;
    let marker = config
        .description()
        .as_deref()
        .and_then(Marker::parse)
        .filter(|marker| marker.cluster == cluster && marker.node == node);
    let tag = ownership_tag(&cluster);
    let tagged = config.get("tags").is_some_and(|tags| {
        tags.split([';', ',', ' '])
            .any(|found| found.eq_ignore_ascii_case(&tag))
    });
    // An untagged VM is kiln's only as a clone a killed run left before
    // `configure` tagged it.
    let ours = marker.is_some_and(|marker| tagged || marker.stage == Stage::Cloned);
    if !ours {
        return Err(format!(
            "refusing to destroy VM {vmid} on {pve_node}: it is not marked as node `{node}` of kiln cluster `{cluster}` (tag `{tag}`, `{KILN_TAG}` block)"
        ));
    }
    let status = client
        .vm_status(&pve_node, vmid)
        .await
        .map_err(|error| error.to_string())?;
    if status.is_running() {
        client
            .run(|| client.stop(&pve_node, vmid))
            .await
            .map_err(|error| error.to_string())?;
    }
    let options = DeleteOptions {
        purge: true,
        destroy_unreferenced_disks: true,
    };
    client
        .run(|| client.delete_vm(&pve_node, vmid, options))
        .await
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Reboots a running VM so that settings Proxmox applies at boot take effect.
pub async fn reboot(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let vmid = slot.vmid()?;
    let client = &context.client;
    client
        .run(|| client.reboot(&wanted.pve_node, vmid))
        .await
        .map_err(|error| error.to_string())?;
    Ok(())
}
