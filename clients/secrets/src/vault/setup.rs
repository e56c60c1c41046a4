//! `kiln secrets init` for Vault: the KV v2 mount (created when the token
//! may) and the least-privilege policy kiln needs, as HCL.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;

use super::VaultClient;
use super::error::VaultError;

/// What happened to the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountState {
    /// A KV v2 mount was already there.
    Present,
    /// kiln created it.
    Created,
    /// The token may not read or create mounts; an operator must.
    NotAllowed,
}

/// Makes sure `mount` is a KV v2 secrets engine, creating it if allowed.
pub async fn ensure_kv2_mount(client: &VaultClient, mount: &str) -> Result<MountState, VaultError> {
    let api = format!("sys/mounts/{mount}");
    let answer = client.call(Method::GET, &api, None).await?;
    if answer.status.is_success() {
        let body = answer.body.unwrap_or_default();
        let data = body.get("data").unwrap_or(&body);
        let kind = data["type"].as_str().unwrap_or_default();
        let version = data["options"]["version"].as_str().unwrap_or("1");
        if kind == "kv" && version == "2" {
            return Ok(MountState::Present);
        }
        return Err(VaultError::Config(format!(
            "the mount `{mount}` exists but is `{kind}` version {version}, not KV version 2"
        )));
    }
    if answer.status == StatusCode::FORBIDDEN {
        return Ok(MountState::NotAllowed);
    }
    let body = json!({
        "type": "kv",
        "description": "kiln: cluster secrets",
        "options": { "version": "2" },
    });
    let created = client.call(Method::POST, &api, Some(&body)).await?;
    match created.status {
        status if status.is_success() => Ok(MountState::Created),
        StatusCode::FORBIDDEN => Ok(MountState::NotAllowed),
        _ => Err(client.failure(&Method::POST, &api, &created)),
    }
}

/// The policy kiln needs for one cluster: its own folder in the mount, the
/// metadata to list it and check versions, and renewing its own token.
/// References to other paths (`vault:` in the inventory) need read access
/// that the operator adds for exactly those paths.
pub fn policy_hcl(mount: &str, cluster: &str, extra_reads: &[String]) -> String {
    let mut hcl = format!(
        r#"# kiln: least privilege for cluster `{cluster}`.
# Generated secrets and the run lock: read, write, check-and-set.
path "{mount}/data/kiln/{cluster}/*" {{
  capabilities = ["create", "read", "update"]
}}
# Versions (check-and-set) and `kiln secrets list`.
path "{mount}/metadata/kiln/{cluster}/*" {{
  capabilities = ["read", "list"]
}}
path "{mount}/metadata/kiln/{cluster}" {{
  capabilities = ["list"]
}}
# Long runs renew kiln's own token.
path "auth/token/renew-self" {{
  capabilities = ["update"]
}}
path "auth/token/lookup-self" {{
  capabilities = ["read"]
}}
"#
    );
    for path in extra_reads {
        hcl.push_str(&format!(
            "# Referenced by the inventory.\npath \"{path}\" {{\n  capabilities = [\"read\"]\n}}\n"
        ));
    }
    hcl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_covers_the_cluster_folder_only() {
        let hcl = policy_hcl("secret", "home", &["kv/data/kiln/proxmox".to_owned()]);
        assert!(hcl.contains(r#"path "secret/data/kiln/home/*""#));
        assert!(hcl.contains(r#"path "kv/data/kiln/proxmox""#));
        assert!(!hcl.contains("delete"), "kiln never needs delete");
        assert!(!hcl.contains("sudo"));
    }
}
