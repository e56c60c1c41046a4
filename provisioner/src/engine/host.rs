//! The steps that reach into a node once Proxmox reports it booted: learn and
//! pin its SSH host key through the guest agent, then wait until kiln can log
//! in. They run only when the inventory has an `ssh` section; without one a
//! node's pipeline ends when the guest agent reports its address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh_key::PublicKey;

use super::access::HostAccess;
use super::context::{Context, NodeSlot};
use super::poll::{Expired, Look, Pause, poll_until};
use crate::plan::DesiredVm;

/// The file the guest agent reads to learn a node's host key; cloud-init
/// writes it when it generates the host keys on first boot.
const HOST_KEY_FILE: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

fn access(context: &Context) -> Result<&HostAccess, String> {
    context
        .hosts
        .as_deref()
        .ok_or_else(|| "this run has no SSH access configured (inventory `ssh`)".to_owned())
}

/// Pins the node's host key read through the guest agent (a channel the
/// Proxmox API already authenticates), then waits until SSH lets kiln in.
pub async fn wait_for_ssh(
    context: Arc<Context>,
    wanted: Arc<DesiredVm>,
    slot: Arc<NodeSlot>,
) -> Result<(), String> {
    let access = access(&context)?;
    let vmid = slot.vmid()?;
    let started = Instant::now();
    let patience = context.timeouts.ssh;
    let key = read_host_key(&context, &wanted, vmid, patience).await?;
    access
        .policy
        .pin(&wanted.address(), access.port, &key)
        .map_err(|error| format!("node `{}`: {error}", wanted.node))?;
    let left = patience.saturating_sub(started.elapsed());
    let session = kiln_ssh::wait_for_ssh(
        &access.target(&wanted),
        &access.key,
        &access.policy,
        &access.timeouts,
        left,
    )
    .await
    .map_err(|error| format!("node `{}`: {error}", wanted.node))?;
    if context.agents.is_some() {
        slot.keep_session(session);
    } else {
        session.close().await;
    }
    Ok(())
}

/// Polls the guest agent for the host key until cloud-init has written it.
async fn read_host_key(
    context: &Context,
    wanted: &DesiredVm,
    vmid: u32,
    patience: Duration,
) -> Result<PublicKey, String> {
    let pause = Pause {
        first: Duration::from_millis(250),
        max: Duration::from_secs(3),
    };
    poll_until(patience, pause, || async {
        match context
            .client
            .agent_file_read(&wanted.pve_node, vmid, HOST_KEY_FILE)
            .await
        {
            Ok(file) => match PublicKey::from_openssh(file.content.trim()) {
                Ok(key) => Look::Ready(key),
                Err(error) => Look::Waiting(format!(
                    "{HOST_KEY_FILE} is not an OpenSSH public key: {error}"
                )),
            },
            Err(error) => Look::Waiting(error.to_string()),
        }
    })
    .await
    .map_err(|Expired { waited, last }| {
        format!(
            "node `{}`: no SSH host key from the guest agent after {waited:.0?} (last: {last})",
            wanted.node
        )
    })
}
