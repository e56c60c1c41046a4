//! `nfs.*` (the service's settings) and `sharing.nfs.*` (exports).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Filter, query_params};
use crate::client::{Effect, TruenasClient};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NfsProtocol {
    #[serde(rename = "NFSV3")]
    V3,
    #[serde(rename = "NFSV4")]
    V4,
}

/// `nfs.config` (the fields kiln reads).
#[derive(Debug, Clone, Deserialize)]
pub struct NfsConfig {
    pub id: i64,
    #[serde(default)]
    pub servers: Option<i64>,
    pub protocols: Vec<NfsProtocol>,
    #[serde(default)]
    pub bindip: Vec<String>,
    #[serde(default)]
    pub allow_nonroot: bool,
    #[serde(default)]
    pub v4_domain: String,
}

/// `nfs.update`, only the fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NfsConfigUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<NfsProtocol>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindip: Option<Vec<String>>,
}

/// A `sharing.nfs` export.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NfsShare {
    pub id: i64,
    /// One path (the `paths` list is long gone).
    pub path: String,
    #[serde(default)]
    pub comment: String,
    /// CIDRs allowed to mount; with `hosts` also empty, everybody.
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub ro: bool,
    #[serde(default)]
    pub maproot_user: Option<String>,
    #[serde(default)]
    pub maproot_group: Option<String>,
    #[serde(default)]
    pub mapall_user: Option<String>,
    #[serde(default)]
    pub mapall_group: Option<String>,
    #[serde(default)]
    pub enabled: bool,
}

/// `sharing.nfs.create`. Map root to a user that exists on the NAS, or
/// leave it `None`; `maproot_*` and `mapall_*` exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewNfsShare {
    pub path: String,
    pub comment: String,
    pub networks: Vec<String>,
    pub hosts: Vec<String>,
    pub ro: bool,
    pub maproot_user: Option<String>,
    pub maproot_group: Option<String>,
    pub enabled: bool,
}

/// `sharing.nfs.update`, only the fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NfsShareUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl TruenasClient {
    pub async fn nfs_config(&self) -> Result<NfsConfig> {
        self.call("nfs.config", json!([]), Effect::Reads).await
    }

    pub async fn update_nfs_config(&self, update: &NfsConfigUpdate) -> Result<NfsConfig> {
        self.call("nfs.update", json!([update]), Effect::Changes)
            .await
    }

    pub async fn nfs_shares(&self, filters: &[Filter]) -> Result<Vec<NfsShare>> {
        self.call("sharing.nfs.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_nfs_share(&self, share: &NewNfsShare) -> Result<NfsShare> {
        self.call("sharing.nfs.create", json!([share]), Effect::Changes)
            .await
    }

    pub async fn update_nfs_share(&self, id: i64, update: &NfsShareUpdate) -> Result<NfsShare> {
        self.call("sharing.nfs.update", json!([id, update]), Effect::Changes)
            .await
    }

    pub async fn delete_nfs_share(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("sharing.nfs.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_requests_send_null_for_unset() {
        let share = NewNfsShare {
            path: "/mnt/tank/k8s/lab/nfs".into(),
            comment: "kiln:lab".into(),
            networks: vec!["10.0.0.0/24".into()],
            hosts: vec![],
            ro: false,
            maproot_user: None,
            maproot_group: None,
            enabled: true,
        };
        assert_eq!(
            serde_json::to_value(&share).unwrap(),
            json!({"path": "/mnt/tank/k8s/lab/nfs", "comment": "kiln:lab", "networks": ["10.0.0.0/24"],
                   "hosts": [], "ro": false, "maproot_user": null, "maproot_group": null, "enabled": true})
        );
        let update = NfsConfigUpdate {
            protocols: Some(vec![NfsProtocol::V3, NfsProtocol::V4]),
            bindip: None,
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"protocols": ["NFSV3", "NFSV4"]})
        );
    }
}
