//! From the inventory to a connected Proxmox client: the endpoint and pin
//! (values or `env:`), the credentials (secret references), the limits.

use kiln_inventory::Inventory;
use secrecy::ExposeSecret;

use crate::secrets::ClusterSecrets;
use crate::trust::trust_of;
use kiln_proxmox::{Auth, ClientConfig, LimitsConfig, ProxmoxClient};
use kiln_secrets::SecretsError;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the inventory has no `proxmox` section")]
    NoProxmox,
    #[error("`{field}`: {reason}")]
    Setting { field: &'static str, reason: String },
    #[error(transparent)]
    Secret(#[from] SecretsError),
    #[error("Proxmox client: {0}")]
    Client(Box<kiln_proxmox::Error>),
}

impl From<kiln_proxmox::Error> for ConnectError {
    fn from(error: kiln_proxmox::Error) -> Self {
        Self::Client(Box::new(error))
    }
}

/// A client for the inventory's Proxmox, with its secrets resolved.
pub async fn proxmox_client(
    inventory: &Inventory,
    secrets: &ClusterSecrets,
) -> Result<ProxmoxClient, ConnectError> {
    let proxmox = inventory.proxmox.as_ref().ok_or(ConnectError::NoProxmox)?;
    let endpoint = proxmox
        .endpoint
        .resolve()
        .map_err(|reason| ConnectError::Setting {
            field: "proxmox.endpoint",
            reason,
        })?;
    let trust = trust_of(&proxmox.tls).map_err(|reason| ConnectError::Setting {
        field: "proxmox.tls.fingerprint",
        reason,
    })?;
    let uses = inventory.secret_references();
    let find = |field: &str| uses.iter().find(|used| used.path.to_string() == field);
    let auth = match (
        find("proxmox.auth.token"),
        &proxmox.auth.user,
        find("proxmox.auth.password"),
    ) {
        (Some(token), _, _) => Auth::token_from_str(secrets.resolve(token).await?.expose_secret())?,
        (None, Some(user), Some(password)) => Auth::Password {
            username: user.clone(),
            password: secrets.resolve(password).await?,
        },
        _ => {
            return Err(ConnectError::Setting {
                field: "proxmox.auth",
                reason: "no credentials: give `token`, or `user` with `password`".to_owned(),
            });
        }
    };
    let mut config = ClientConfig::new(endpoint.as_str().trim_end_matches('/'), auth, trust);
    config.limits = LimitsConfig {
        per_node: proxmox.limits.per_node as usize,
        per_storage: proxmox.limits.per_storage as usize,
    };
    Ok(ProxmoxClient::new(config)?)
}
