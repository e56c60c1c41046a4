//! Secret references and the settings they depend on.

use super::Findings;
use crate::model::{Inventory, SecretBackend, VaultAuthMethod};
use crate::path;
use crate::values::SecretRef;

pub(super) fn check(inventory: &Inventory, findings: &mut Findings<'_>) {
    if let Some(proxmox) = &inventory.proxmox {
        let auth = &proxmox.auth;
        let at = path!["proxmox", "auth"];
        match (&auth.token, &auth.user, &auth.password) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                findings.report(
                    &at,
                    "give either `token` or `user` with `password`, not both",
                );
            }
            (None, Some(_), None) => {
                findings.report(&at, "`user` needs `password` (a secret reference)");
            }
            (None, None, Some(_)) => {
                findings.report(&at, "`password` needs `user`");
            }
            (None, None, None) => {
                findings
                    .report(&at, "Proxmox needs credentials: `token` (recommended) or `user` with `password`")
                    .help = Some("e.g. `token: env:KILN_PROXMOX_TOKEN`, holding `user@realm!tokenid=secret`".to_owned());
            }
        }
    }
    let secrets = &inventory.secrets;
    if secrets.backend == SecretBackend::Vault && secrets.vault.is_none() {
        findings.report(
            &path!["secrets", "backend"],
            "backend `vault` needs `secrets.vault` (address, auth)",
        );
    }
    if let Some(vault) = &secrets.vault {
        let auth = &vault.auth;
        let at = path!["secrets", "vault", "auth"];
        let required: &[(&str, Option<&SecretRef>)] = match auth.method {
            VaultAuthMethod::Token => &[("token", auth.token.as_ref())],
            VaultAuthMethod::Approle => &[
                ("role_id", auth.role_id.as_ref()),
                ("secret_id", auth.secret_id.as_ref()),
            ],
        };
        for (field, value) in required {
            match value {
                None => {
                    findings.report(&at, format!("Vault auth method needs `{field}`"));
                }
                Some(SecretRef::Vault { .. }) => {
                    findings.report(
                        &at.key(*field),
                        format!("`{field}` cannot come from Vault itself: use an `env:` or `file:` reference"),
                    );
                }
                Some(_) => {}
            }
        }
    }
    if secrets.vault.is_none() {
        for used in inventory.secret_references() {
            if matches!(used.reference, SecretRef::Vault { .. }) {
                findings
                    .report(
                        &used.path,
                        format!(
                            "`{}` is a `vault:` reference, but `secrets.vault` is not set",
                            used.path
                        ),
                    )
                    .help = Some("configure `secrets.vault`, or use `file:` or `env:`".to_owned());
            }
        }
    }
}
