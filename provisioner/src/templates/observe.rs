//! What Proxmox has on the template VMIDs: one `/cluster/resources` call,
//! then a config read of each VM there that carries the cluster's tag (its
//! description holds the template marker). Nothing here writes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::marker::TemplateMarker;
use super::plan::{DesiredTemplate, ObservedTemplate};
use crate::plan::ownership_tag;
use kiln_proxmox::{ProxmoxClient, VmResource};

/// The VMs on the desired templates' VMIDs, once none of them holds a lock
/// (an interrupted run's create or convert task ends on its own), or as
/// they are after `lock_wait`, locks and all, for the plan to report.
pub async fn observe_templates(
    client: &ProxmoxClient,
    cluster: &str,
    desired: &[DesiredTemplate],
    lock_wait: Duration,
) -> Result<Vec<ObservedTemplate>, kiln_proxmox::Error> {
    let deadline = Instant::now() + lock_wait;
    loop {
        let observed = observe_once(client, cluster, desired).await?;
        let locked: Vec<String> = observed
            .iter()
            .filter_map(|vm| {
                vm.lock
                    .as_ref()
                    .map(|lock| format!("VM {} ({lock})", vm.vmid))
            })
            .collect();
        if locked.is_empty() || Instant::now() >= deadline {
            return Ok(observed);
        }
        tracing::warn!(locked = %locked.join(", "), "waiting for Proxmox to unlock");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn observe_once(
    client: &ProxmoxClient,
    cluster: &str,
    desired: &[DesiredTemplate],
) -> Result<Vec<ObservedTemplate>, kiln_proxmox::Error> {
    let tag = ownership_tag(cluster);
    let vmids: BTreeSet<u32> = desired.iter().map(|wanted| wanted.vmid).collect();
    let mut observed = Vec::new();
    for vm in client
        .cluster_vms()
        .await?
        .into_iter()
        .filter(|vm| vmids.contains(&vm.vmid))
    {
        let marker = if vm.is_qemu() && vm.has_tag(&tag) {
            client
                .vm_config(&vm.node, vm.vmid)
                .await?
                .description()
                .as_deref()
                .and_then(TemplateMarker::parse)
        } else {
            None
        };
        observed.push(observed_template(vm, marker));
    }
    Ok(observed)
}

fn observed_template(vm: VmResource, marker: Option<TemplateMarker>) -> ObservedTemplate {
    ObservedTemplate {
        vmid: vm.vmid,
        tags: vm.tags.iter().map(|tag| tag.to_ascii_lowercase()).collect(),
        name: vm.name.unwrap_or_default(),
        pve_node: vm.node,
        template: vm.template,
        lock: vm.lock.filter(|lock| !lock.is_empty()),
        marker,
    }
}
