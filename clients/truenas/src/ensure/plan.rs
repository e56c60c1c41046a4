//! Reading the NAS and working out the changes. Reads only.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;

use super::{Change, DesiredIscsi, DesiredNfs, DesiredStorage, Plan, StorageIds};
use crate::api::{Filter, NfsProtocol};
use crate::client::TruenasClient;
use crate::error::{Error, Result};
use crate::iqn::is_valid_iqn;

/// TrueNAS's service names.
const ISCSI_SERVICE: &str = "iscsitarget";
const NFS_SERVICE: &str = "nfs";

/// The changes that bring the NAS to `desired`; makes no change itself.
pub async fn plan(client: &TruenasClient, desired: &DesiredStorage) -> Result<Plan> {
    check(desired)?;
    let marker = desired.marker();
    let mut plan = Plan {
        changes: Vec::new(),
        existing: StorageIds::default(),
        cluster: desired.cluster.clone(),
    };
    plan_datasets(client, desired, &mut plan).await?;
    if let Some(iscsi) = &desired.iscsi {
        plan_iscsi(client, iscsi, &marker, &mut plan).await?;
    }
    if let Some(nfs) = &desired.nfs {
        plan_nfs(client, nfs, &marker, &mut plan).await?;
    }
    plan_services(client, desired, &mut plan).await?;
    if let Some(account) = &desired.csi_account {
        super::csi_account::plan_csi_account(client, account, &marker, &mut plan).await?;
    }
    Ok(plan)
}

fn check(desired: &DesiredStorage) -> Result<()> {
    let invalid = |reason: String| Err(Error::Config(format!("desired storage: {reason}")));
    if desired.cluster.trim().is_empty() {
        return invalid("the cluster name is empty".to_owned());
    }
    if let Some(iscsi) = &desired.iscsi {
        if iscsi.initiators.is_empty() {
            return invalid(
                "no initiator IQNs: an empty initiator group would admit every initiator"
                    .to_owned(),
            );
        }
        if let Some(bad) = iscsi.initiators.iter().find(|iqn| !is_valid_iqn(iqn)) {
            return invalid(format!("{bad:?} is not a valid iqn. name"));
        }
        if let Some(chap) = &iscsi.chap {
            let length = chap.secret.expose_secret().chars().count();
            if !(12..=16).contains(&length) {
                return invalid(format!(
                    "the CHAP secret for {} has {length} characters; TrueNAS needs 12 to 16",
                    chap.user
                ));
            }
        }
    }
    if let Some(account) = &desired.csi_account {
        if account.username.trim().is_empty() {
            return invalid("the CSI account's username is empty".to_owned());
        }
        if account.roles.is_empty() {
            return invalid(
                "the CSI account has no roles: TrueNAS gives no key to a user without any"
                    .to_owned(),
            );
        }
    }
    if let Some(nfs) = &desired.nfs
        && nfs.networks.is_empty()
    {
        return invalid(
            "no NFS networks: an export without networks or hosts is open to everybody".to_owned(),
        );
    }
    Ok(())
}

async fn plan_datasets(
    client: &TruenasClient,
    desired: &DesiredStorage,
    plan: &mut Plan,
) -> Result<()> {
    let mut wanted: Vec<&String> = desired.datasets.iter().collect();
    if let Some(nfs) = &desired.nfs {
        wanted.push(&nfs.dataset);
    }
    let wanted: BTreeSet<&String> = wanted.into_iter().collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let found = client
        .datasets(&[Filter::is_in("id", &wanted.iter().collect::<Vec<_>>())])
        .await?;
    for name in wanted {
        match found.iter().find(|d| &d.id == name) {
            Some(dataset) if dataset.is_volume() => {
                return Err(Error::Conflict {
                    endpoint: client.endpoint().to_owned(),
                    reason: format!(
                        "{name} is a zvol, but kiln needs a filesystem there; kiln will not \
                         change or delete it"
                    ),
                });
            }
            Some(_) => {}
            None => plan
                .changes
                .push(Change::CreateDataset { name: name.clone() }),
        }
    }
    Ok(())
}

async fn plan_iscsi(
    client: &TruenasClient,
    iscsi: &DesiredIscsi,
    marker: &str,
    plan: &mut Plan,
) -> Result<()> {
    let global = client.iscsi_global().await?;
    if global.listen_port != iscsi.portal.port() {
        plan.changes.push(Change::SetIscsiPort {
            from: global.listen_port,
            to: iscsi.portal.port(),
        });
    }

    let ip = iscsi.portal.ip().to_string();
    let portals = client.portals(&[]).await?;
    let listens_on = |portal: &crate::api::Portal| -> Vec<String> {
        portal.listen.iter().map(|l| l.ip.clone()).collect()
    };
    if let Some(ours) = portals.iter().find(|p| p.comment == marker) {
        plan.existing.portal_id = Some(ours.id);
        if listens_on(ours) != [ip.clone()] {
            plan.changes.push(Change::UpdatePortal {
                id: ours.id,
                from: listens_on(ours),
                to: ip,
            });
        }
    } else if let Some(theirs) = portals.iter().find(|p| listens_on(p).contains(&ip)) {
        // TrueNAS allows one portal per address; use it without changing it.
        plan.existing.portal_id = Some(theirs.id);
    } else {
        plan.changes.push(Change::CreatePortal { ip });
    }

    let wanted: Vec<String> = iscsi.initiators.iter().cloned().collect();
    let groups = client.initiator_groups(&[]).await?;
    match groups.iter().find(|g| g.comment == marker) {
        Some(ours) => {
            plan.existing.initiator_group_id = Some(ours.id);
            let have: BTreeSet<String> = ours.initiators.iter().cloned().collect();
            if have != iscsi.initiators || ours.initiators.len() != have.len() {
                plan.changes.push(Change::UpdateInitiatorGroup {
                    id: ours.id,
                    added: iscsi.initiators.difference(&have).cloned().collect(),
                    removed: have.difference(&iscsi.initiators).cloned().collect(),
                    initiators: wanted,
                });
            }
        }
        None => plan
            .changes
            .push(Change::CreateInitiatorGroup { initiators: wanted }),
    }

    if let Some(chap) = &iscsi.chap {
        let auths = client.chap_auths(&[]).await?;
        match auths.iter().find(|a| a.user == chap.user) {
            Some(ours) => {
                plan.existing.chap_tag = Some(ours.tag);
                if ours.secret.expose_secret() != chap.secret.expose_secret() {
                    plan.changes.push(Change::SetChapSecret {
                        id: ours.id,
                        tag: ours.tag,
                        user: chap.user.clone(),
                        secret: chap.secret.clone(),
                    });
                }
            }
            None => plan.changes.push(Change::CreateChap {
                tag: auths.iter().map(|a| a.tag).max().unwrap_or(0) + 1,
                user: chap.user.clone(),
                secret: chap.secret.clone(),
            }),
        }
    }
    Ok(())
}

async fn plan_nfs(
    client: &TruenasClient,
    nfs: &DesiredNfs,
    marker: &str,
    plan: &mut Plan,
) -> Result<()> {
    let config = client.nfs_config().await?;
    if !config.protocols.contains(&NfsProtocol::V4) {
        // Talos mounts with NFSv4 (no rpc.statd for v3 locking there).
        let mut protocols = config.protocols.clone();
        protocols.push(NfsProtocol::V4);
        protocols.sort();
        plan.changes.push(Change::SetNfsProtocols { protocols });
    }

    let path = format!("/mnt/{}", nfs.dataset);
    let shares = client.nfs_shares(&[]).await?;
    let wanted: Vec<String> = nfs.networks.iter().cloned().collect();
    match shares.iter().find(|s| s.comment == marker) {
        Some(ours) => {
            plan.existing.nfs_share_id = Some(ours.id);
            let have: BTreeSet<String> = ours.networks.iter().cloned().collect();
            if have != nfs.networks || ours.path != path || !ours.hosts.is_empty() {
                plan.changes.push(Change::UpdateNfsShare {
                    id: ours.id,
                    path,
                    added: nfs.networks.difference(&have).cloned().collect(),
                    removed: have.difference(&nfs.networks).cloned().collect(),
                    networks: wanted,
                });
            }
        }
        None => plan.changes.push(Change::CreateNfsShare {
            path,
            networks: wanted,
        }),
    }
    Ok(())
}

async fn plan_services(
    client: &TruenasClient,
    desired: &DesiredStorage,
    plan: &mut Plan,
) -> Result<()> {
    let mut names = Vec::new();
    if desired.iscsi.is_some() {
        names.push(ISCSI_SERVICE);
    }
    if desired.nfs.is_some() {
        names.push(NFS_SERVICE);
    }
    if names.is_empty() {
        return Ok(());
    }
    let services = client.services(&[Filter::is_in("service", &names)]).await?;
    for name in names {
        let Some(service) = services.iter().find(|s| s.service == name) else {
            return Err(Error::Conflict {
                endpoint: client.endpoint().to_owned(),
                reason: format!("the NAS has no {name} service"),
            });
        };
        if !service.enable {
            plan.changes.push(Change::EnableService {
                service: name.to_owned(),
            });
        }
        if !service.is_running() {
            plan.changes.push(Change::StartService {
                service: name.to_owned(),
            });
        }
    }
    Ok(())
}
