//! What the inventory asks of TrueNAS, and a client to ask it with.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kiln_inventory::Inventory;
use kiln_inventory::model::TrueNas;
use kiln_secrets::generated::{ChapCredential, truenas_chap};
use kiln_truenas::ensure::{
    ChapCredentials, DesiredCsiAccount, DesiredIscsi, DesiredNfs, DesiredStorage,
};
use kiln_truenas::{ClientConfig, DEMOCRATIC_CSI_ROLES, TruenasClient, initiator_name};

/// TrueNAS user names are at most 32 characters.
const USERNAME_LIMIT: usize = 32;

use super::StorageError;
use crate::secrets::ClusterSecrets;
use crate::trust::trust_of;

/// Everything a run needs for storage: the NAS, what it must hold, and the
/// store that keeps the CSI driver's key the moment TrueNAS hands it out.
pub struct StorageSetup {
    pub client: TruenasClient,
    pub desired: DesiredStorage,
    pub settings: TrueNas,
    pub store: kiln_secrets::Store,
}

/// The inventory's TrueNAS, connected and logged in; `None` without a
/// `storage` section.
pub async fn connect(
    inventory: &Inventory,
    secrets: &ClusterSecrets,
) -> Result<Option<StorageSetup>, StorageError> {
    let Some(storage) = &inventory.storage else {
        return Ok(None);
    };
    let truenas = &storage.truenas;
    let endpoint = truenas
        .endpoint
        .resolve()
        .map_err(|reason| StorageError::Setting {
            field: "storage.truenas.endpoint",
            reason,
        })?;
    let trust = trust_of(&truenas.tls).map_err(|reason| StorageError::Setting {
        field: "storage.truenas.tls.fingerprint",
        reason,
    })?;
    let api_key = secrets
        .resolve_ref(&truenas.api_key, "storage.truenas.api_key")
        .await?;
    let chap = match &truenas.iscsi {
        Some(iscsi) if iscsi.chap => {
            Some(truenas_chap(secrets.store(), inventory.cluster.name.as_str()).await?)
        }
        _ => None,
    };
    let desired = desired_storage(inventory, chap)?;
    let config = ClientConfig::new(endpoint.as_str().trim_end_matches('/'), api_key, trust);
    let client = TruenasClient::connect(config).await?;
    Ok(Some(StorageSetup {
        client,
        desired,
        settings: truenas.clone(),
        store: secrets.store().clone(),
    }))
}

/// Every node's initiator name (every node of the inventory can attach).
fn node_initiators(inventory: &Inventory) -> Result<BTreeSet<String>, StorageError> {
    let cluster = inventory.cluster.name.as_str();
    inventory
        .nodes
        .iter()
        .map(|node| {
            initiator_name(cluster, node.name.as_str()).map_err(|error| StorageError::Setting {
                field: "nodes",
                reason: format!("node `{}`: {error}", node.name),
            })
        })
        .collect()
}

/// The NAS's desired state: the parent datasets, the portal and an
/// initiator group of exactly the nodes, the export of the NFS parent to
/// exactly the nodes' addresses. Pure.
pub fn desired_storage(
    inventory: &Inventory,
    chap: Option<ChapCredential>,
) -> Result<DesiredStorage, StorageError> {
    let Some(storage) = &inventory.storage else {
        return Err(StorageError::Setting {
            field: "storage",
            reason: "the inventory has no `storage` section".to_owned(),
        });
    };
    let truenas = &storage.truenas;
    let mut datasets = Vec::new();
    let iscsi = match &truenas.iscsi {
        Some(iscsi) => {
            datasets.push(iscsi.dataset.clone());
            let portal = iscsi
                .portal_address()
                .ok_or_else(|| StorageError::Setting {
                    field: "storage.truenas.iscsi.portal",
                    reason: format!("`{}` is not an address", iscsi.portal),
                })?;
            Some(DesiredIscsi {
                portal,
                initiators: node_initiators(inventory)?,
                chap: chap.map(|chap| ChapCredentials {
                    user: chap.user,
                    secret: chap.secret,
                }),
            })
        }
        None => None,
    };
    let nfs = truenas.nfs.as_ref().map(|nfs| {
        datasets.push(nfs.dataset.clone());
        DesiredNfs {
            dataset: nfs.dataset.clone(),
            networks: node_networks(inventory),
        }
    });
    Ok(DesiredStorage {
        cluster: inventory.cluster.name.to_string(),
        datasets,
        iscsi,
        nfs,
        csi_account: truenas.csi_account.then(|| DesiredCsiAccount {
            username: csi_username(inventory.cluster.name.as_str()),
            roles: DEMOCRATIC_CSI_ROLES
                .iter()
                .map(|role| (*role).to_owned())
                .collect(),
        }),
    })
}

/// democratic-csi's TrueNAS user: `kiln-csi-<cluster>`, within TrueNAS's
/// 32 characters (cluster names are already lower-case letters, digits
/// and `-`).
pub fn csi_username(cluster: &str) -> String {
    let mut name = format!("kiln-csi-{cluster}");
    name.truncate(USERNAME_LIMIT);
    name.trim_end_matches('-').to_owned()
}

/// Every node's own addresses as host networks (`/32`, `/128`).
pub fn node_networks(inventory: &Inventory) -> BTreeSet<String> {
    let mut networks = BTreeSet::new();
    for node in &inventory.nodes {
        networks.insert(format!("{}/32", node.ip));
        if let Some(ipv6) = node.ipv6 {
            networks.insert(format!("{ipv6}/128"));
        }
    }
    networks
}

/// The portal's address as nodes reach it: a wildcard listen address is no
/// place to log in to, so nodes use the NFS server's address then.
pub fn reachable_portal(settings: &TrueNas, portal: SocketAddr) -> SocketAddr {
    if !portal.ip().is_unspecified() {
        return portal;
    }
    let server = settings
        .nfs
        .as_ref()
        .and_then(|nfs| nfs.server.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(server, portal.port())
}

#[cfg(test)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    fn inventory(storage: &str) -> Inventory {
        let text = format!(
            "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: a, role: host, ip: 10.0.0.11, baremetal: {{}}}}
  - {{name: b, role: host, ip: 10.0.0.12, baremetal: {{}}}}
{storage}"
        );
        kiln_inventory::parse("kiln.yaml", &text).expect("inventory")
    }

    const STORAGE: &str = "storage:
  truenas:
    endpoint: https://nas.lan
    api_key: env:NAS_KEY
    iscsi: {portal: 10.0.0.5, dataset: tank/k8s/iscsi, chap: true}
    nfs: {server: 10.0.0.5, dataset: tank/k8s/nfs}
";

    #[test]
    fn the_nas_admits_exactly_the_inventorys_nodes() {
        let chap = ChapCredential {
            user: "home".to_owned(),
            secret: SecretString::from("0123456789abcdef"),
        };
        let desired = desired_storage(&inventory(STORAGE), Some(chap)).expect("desired");
        assert_eq!(desired.cluster, "home");
        assert_eq!(desired.datasets, ["tank/k8s/iscsi", "tank/k8s/nfs"]);
        let iscsi = desired.iscsi.expect("iscsi");
        assert_eq!(iscsi.portal, "10.0.0.5:3260".parse().unwrap());
        assert_eq!(
            iscsi.initiators.into_iter().collect::<Vec<_>>(),
            [
                "iqn.2026-01.invalid.kiln:home:a",
                "iqn.2026-01.invalid.kiln:home:b"
            ]
        );
        assert_eq!(
            iscsi.chap.expect("chap").secret.expose_secret(),
            "0123456789abcdef"
        );
        let nfs = desired.nfs.expect("nfs");
        assert_eq!(nfs.dataset, "tank/k8s/nfs");
        assert_eq!(
            nfs.networks.into_iter().collect::<Vec<_>>(),
            ["10.0.0.11/32", "10.0.0.12/32"]
        );
        let account = desired.csi_account.expect("a CSI account by default");
        assert_eq!(account.username, "kiln-csi-home");
        assert!(account.roles.contains("DATASET_DELETE"));
        assert_eq!(account.roles.len(), DEMOCRATIC_CSI_ROLES.len());
    }

    #[test]
    fn csi_user_names_fit_truenas() {
        assert_eq!(csi_username("home"), "kiln-csi-home");
        let long = csi_username(&"a".repeat(40));
        assert_eq!(long.len(), USERNAME_LIMIT);
        assert_eq!(
            csi_username(&format!("{}-b", "a".repeat(22))),
            format!("kiln-csi-{}", "a".repeat(22))
        );
    }

    #[test]
    fn nfs_alone_asks_for_no_portal() {
        let storage = "storage:
  truenas:
    endpoint: https://nas.lan
    api_key: env:NAS_KEY
    nfs: {server: 10.0.0.5, dataset: tank/k8s/nfs}
";
        let desired = desired_storage(&inventory(storage), None).expect("desired");
        assert!(desired.iscsi.is_none());
        assert_eq!(desired.datasets, ["tank/k8s/nfs"]);
    }

    #[test]
    fn a_wildcard_portal_is_reached_at_the_servers_address() {
        let settings = inventory(STORAGE).storage.expect("storage").truenas;
        assert_eq!(
            reachable_portal(&settings, "0.0.0.0:3260".parse().unwrap()),
            "10.0.0.5:3260".parse().unwrap()
        );
        assert_eq!(
            reachable_portal(&settings, "10.0.0.6:3261".parse().unwrap()),
            "10.0.0.6:3261".parse().unwrap()
        );
    }
}
