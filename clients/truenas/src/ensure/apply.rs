//! Making a plan's changes, in its order (datasets before the export that
//! needs them, configuration before the services that serve it).
//!
//! The first failure stops the apply; what was done stays done, and
//! planning again shows what is left.

use super::{Change, Plan, StorageIds, marker};
use crate::api::{
    ChapAuthUpdate, DatasetKind, InitiatorGroupUpdate, IscsiGlobalUpdate, NewChapAuth, NewDataset,
    NewInitiatorGroup, NewNfsShare, NewPortal, NfsConfigUpdate, NfsShareUpdate, PortalIp,
    PortalUpdate, ServiceVerb, UserProperty,
};
use crate::client::TruenasClient;
use crate::error::Result;

/// The dataset property that marks datasets kiln created.
const CLUSTER_PROPERTY: &str = "kiln:cluster";

/// Makes the plan's changes; answers the ids democratic-csi needs.
pub async fn apply(client: &TruenasClient, plan: Plan) -> Result<StorageIds> {
    let mut ids = plan.existing;
    let marker = marker(&plan.cluster);
    for change in plan.changes {
        tracing::info!(endpoint = client.endpoint(), %change, "TrueNAS change");
        match change {
            Change::CreateDataset { name } => {
                client
                    .create_dataset(&NewDataset {
                        name,
                        kind: DatasetKind::Filesystem,
                        user_properties: vec![UserProperty {
                            key: CLUSTER_PROPERTY.to_owned(),
                            value: plan.cluster.clone(),
                        }],
                        create_ancestors: true,
                    })
                    .await?;
            }
            Change::SetIscsiPort { to, .. } => {
                client
                    .update_iscsi_global(&IscsiGlobalUpdate {
                        listen_port: Some(to),
                        ..IscsiGlobalUpdate::default()
                    })
                    .await?;
            }
            Change::CreatePortal { ip } => {
                let portal = client
                    .create_portal(&NewPortal {
                        listen: vec![PortalIp { ip }],
                        comment: marker.clone(),
                    })
                    .await?;
                ids.portal_id = Some(portal.id);
            }
            Change::UpdatePortal { id, to, .. } => {
                client
                    .update_portal(
                        id,
                        &PortalUpdate {
                            listen: Some(vec![PortalIp { ip: to }]),
                            comment: None,
                        },
                    )
                    .await?;
            }
            Change::CreateInitiatorGroup { initiators } => {
                let group = client
                    .create_initiator_group(&NewInitiatorGroup {
                        initiators,
                        comment: marker.clone(),
                    })
                    .await?;
                ids.initiator_group_id = Some(group.id);
            }
            Change::UpdateInitiatorGroup { id, initiators, .. } => {
                client
                    .update_initiator_group(
                        id,
                        &InitiatorGroupUpdate {
                            initiators: Some(initiators),
                            comment: None,
                        },
                    )
                    .await?;
            }
            Change::CreateChap { tag, user, secret } => {
                let auth = client
                    .create_chap_auth(&NewChapAuth { tag, user, secret })
                    .await?;
                ids.chap_tag = Some(auth.tag);
            }
            Change::SetChapSecret { id, secret, .. } => {
                client
                    .update_chap_auth(
                        id,
                        &ChapAuthUpdate {
                            user: None,
                            secret: Some(secret),
                        },
                    )
                    .await?;
            }
            Change::SetNfsProtocols { protocols } => {
                client
                    .update_nfs_config(&NfsConfigUpdate {
                        protocols: Some(protocols),
                        bindip: None,
                    })
                    .await?;
            }
            Change::CreateNfsShare { path, networks } => {
                let share = client
                    .create_nfs_share(&NewNfsShare {
                        path,
                        comment: marker.clone(),
                        networks,
                        hosts: Vec::new(),
                        ro: false,
                        // Volumes are root-owned: without this, root on a
                        // node is squashed and cannot write.
                        maproot_user: Some("root".to_owned()),
                        maproot_group: Some("root".to_owned()),
                        enabled: true,
                    })
                    .await?;
                ids.nfs_share_id = Some(share.id);
            }
            Change::UpdateNfsShare {
                id, path, networks, ..
            } => {
                client
                    .update_nfs_share(
                        id,
                        &NfsShareUpdate {
                            path: Some(path),
                            networks: Some(networks),
                            hosts: Some(Vec::new()),
                            enabled: None,
                        },
                    )
                    .await?;
            }
            Change::EnableService { service } => {
                client.set_service_enabled(&service, true).await?;
            }
            Change::StartService { service } => {
                client.control_service(ServiceVerb::Start, &service).await?;
            }
            change @ (Change::CreateCsiUser { .. }
            | Change::CreateCsiPrivilege { .. }
            | Change::SetCsiPrivilege { .. }
            | Change::DeleteDeadCsiKey { .. }
            | Change::CreateCsiKey { .. }
            | Change::ResetCsiKey { .. }) => {
                super::csi_account::apply_csi_change(client, change, &marker, &mut ids).await?;
            }
        }
    }
    Ok(ids)
}
