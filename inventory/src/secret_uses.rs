//! Every place the inventory refers to a secret, so the secrets store can
//! name where a missing one is used.

use crate::model::Inventory;
use crate::path;
use crate::source::Path;
use crate::values::SecretRef;

/// One secret reference and the field that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    pub path: Path,
    pub reference: SecretRef,
}

impl Inventory {
    /// Every secret reference in the inventory, with the field holding it.
    pub fn secret_references(&self) -> Vec<SecretUse> {
        let mut uses: Vec<(Path, Option<&SecretRef>)> = Vec::new();
        if let Some(proxmox) = &self.proxmox {
            uses.push((
                path!["proxmox", "auth", "token"],
                proxmox.auth.token.as_ref(),
            ));
            uses.push((
                path!["proxmox", "auth", "password"],
                proxmox.auth.password.as_ref(),
            ));
        }
        for (index, node) in self.nodes.iter().enumerate() {
            let password = node
                .baremetal
                .as_ref()
                .and_then(|baremetal| baremetal.power.as_ref())
                .and_then(|power| power.password.as_ref());
            uses.push((
                path!["nodes", index, "baremetal", "power", "password"],
                password,
            ));
        }
        if let Some(ssh) = &self.ssh {
            uses.push((path!["ssh", "key"], ssh.key.as_ref()));
        }
        if let Some(vault) = &self.secrets.vault {
            let auth = &vault.auth;
            uses.push((
                path!["secrets", "vault", "auth", "token"],
                auth.token.as_ref(),
            ));
            uses.push((
                path!["secrets", "vault", "auth", "role_id"],
                auth.role_id.as_ref(),
            ));
            uses.push((
                path!["secrets", "vault", "auth", "secret_id"],
                auth.secret_id.as_ref(),
            ));
        }
        if let Some(storage) = &self.storage {
            uses.push((
                path!["storage", "truenas", "api_key"],
                Some(&storage.truenas.api_key),
            ));
        }
        if let Some(gitops) = &self.gitops {
            uses.push((
                path!["gitops", "flux", "deploy_key"],
                gitops.flux.deploy_key.as_ref(),
            ));
            uses.push((
                path!["gitops", "flux", "sops_age_key"],
                gitops.flux.sops_age_key.as_ref(),
            ));
        }
        uses.into_iter()
            .filter_map(|(path, reference)| {
                reference.map(|reference| SecretUse {
                    path,
                    reference: reference.clone(),
                })
            })
            .collect()
    }
}
