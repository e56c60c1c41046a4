//! `iscsi.*`: the global settings, portals, initiator groups, CHAP
//! credentials, and targets/extents/target-extents (which democratic-csi
//! makes per volume, and kiln only for `storage check`'s test LUN).
//!
//! Targets refer to portals and initiator groups by `id` (the UI's portal
//! "tag" is renumbered on delete) but to CHAP credentials by `tag`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use super::{Filter, query_params};
use crate::client::{Effect, TruenasClient};
use crate::error::Result;

/// `iscsi.global.config`.
#[derive(Debug, Clone, Deserialize)]
pub struct IscsiGlobal {
    pub id: i64,
    /// Target IQNs are `<basename>:<target name>`.
    pub basename: String,
    #[serde(default)]
    pub isns_servers: Vec<String>,
    /// The port every portal listens on (portals carry no port of their own).
    pub listen_port: u16,
    #[serde(default)]
    pub pool_avail_threshold: Option<i64>,
    #[serde(default)]
    pub alua: bool,
    #[serde(default)]
    pub iser: bool,
}

/// `iscsi.global.update`, only the fields given.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IscsiGlobalUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Portal {
    pub id: i64,
    pub listen: Vec<PortalListen>,
    pub tag: i64,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortalListen {
    pub ip: String,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortalIp {
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPortal {
    pub listen: Vec<PortalIp>,
    pub comment: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortalUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<PortalIp>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An initiator group: the IQNs allowed to log in (empty means anyone).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InitiatorGroup {
    pub id: i64,
    #[serde(default)]
    pub initiators: Vec<String>,
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewInitiatorGroup {
    pub initiators: Vec<String>,
    pub comment: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InitiatorGroupUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiators: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryAuth {
    None,
    Chap,
    ChapMutual,
}

/// A CHAP credential (`iscsi.auth`). Secrets stay secret in Debug.
#[derive(Debug, Clone, Deserialize)]
pub struct ChapAuth {
    pub id: i64,
    pub tag: i64,
    pub user: String,
    pub secret: SecretString,
    #[serde(default)]
    pub peeruser: String,
    #[serde(default = "empty_secret")]
    pub peersecret: SecretString,
    pub discovery_auth: DiscoveryAuth,
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
}

fn expose<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

fn expose_some<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_str(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// `iscsi.auth.create`. The secret must be 12–16 characters.
#[derive(Debug, Clone, Serialize)]
pub struct NewChapAuth {
    pub tag: i64,
    pub user: String,
    #[serde(serialize_with = "expose")]
    pub secret: SecretString,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ChapAuthUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_some"
    )]
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthMethod {
    None,
    Chap,
    ChapMutual,
}

/// Which portal, initiator group and CHAP credential a target is served
/// through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    /// Portal `id`.
    pub portal: i64,
    /// Initiator group `id`; `None` lets any initiator in.
    pub initiator: Option<i64>,
    pub authmethod: AuthMethod,
    /// CHAP credential **tag**, not id.
    pub auth: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub groups: Vec<TargetGroup>,
    #[serde(default)]
    pub auth_networks: Vec<String>,
}

/// `iscsi.target.create` (mode `ISCSI`, the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTarget {
    /// Lower-case `[-a-z0-9.:]`, at most 120 characters.
    pub name: String,
    /// `null`, never `""` (an empty alias collides with other targets').
    pub alias: Option<String>,
    pub groups: Vec<TargetGroup>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_networks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Extent {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub disk: Option<String>,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub ro: bool,
}

/// A `DISK` extent over a zvol (`iscsi.extent.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewExtent {
    /// At most 64 characters.
    pub name: String,
    /// `zvol/<pool>/<path>`: see [`NewExtent::zvol`].
    pub disk: String,
    pub comment: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl NewExtent {
    /// An extent serving the zvol `dataset` (`tank/a/b`).
    pub fn zvol(name: impl Into<String>, dataset: &str, comment: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            disk: format!("zvol/{dataset}"),
            comment: comment.into(),
            kind: "DISK",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TargetExtent {
    pub id: i64,
    pub target: i64,
    pub lunid: i64,
    pub extent: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTargetExtent {
    pub target: i64,
    pub extent: i64,
    /// `None`: the next free LUN.
    pub lunid: Option<i64>,
}

impl TruenasClient {
    pub async fn iscsi_global(&self) -> Result<IscsiGlobal> {
        self.call("iscsi.global.config", json!([]), Effect::Reads)
            .await
    }

    pub async fn update_iscsi_global(&self, update: &IscsiGlobalUpdate) -> Result<IscsiGlobal> {
        self.call("iscsi.global.update", json!([update]), Effect::Changes)
            .await
    }

    pub async fn portals(&self, filters: &[Filter]) -> Result<Vec<Portal>> {
        self.call("iscsi.portal.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_portal(&self, portal: &NewPortal) -> Result<Portal> {
        self.call("iscsi.portal.create", json!([portal]), Effect::Changes)
            .await
    }

    pub async fn update_portal(&self, id: i64, update: &PortalUpdate) -> Result<Portal> {
        self.call("iscsi.portal.update", json!([id, update]), Effect::Changes)
            .await
    }

    pub async fn initiator_groups(&self, filters: &[Filter]) -> Result<Vec<InitiatorGroup>> {
        self.call(
            "iscsi.initiator.query",
            query_params(filters),
            Effect::Reads,
        )
        .await
    }

    pub async fn create_initiator_group(
        &self,
        group: &NewInitiatorGroup,
    ) -> Result<InitiatorGroup> {
        self.call("iscsi.initiator.create", json!([group]), Effect::Changes)
            .await
    }

    pub async fn update_initiator_group(
        &self,
        id: i64,
        update: &InitiatorGroupUpdate,
    ) -> Result<InitiatorGroup> {
        self.call(
            "iscsi.initiator.update",
            json!([id, update]),
            Effect::Changes,
        )
        .await
    }

    pub async fn chap_auths(&self, filters: &[Filter]) -> Result<Vec<ChapAuth>> {
        self.call("iscsi.auth.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_chap_auth(&self, auth: &NewChapAuth) -> Result<ChapAuth> {
        self.call("iscsi.auth.create", json!([auth]), Effect::Changes)
            .await
    }

    pub async fn update_chap_auth(&self, id: i64, update: &ChapAuthUpdate) -> Result<ChapAuth> {
        self.call("iscsi.auth.update", json!([id, update]), Effect::Changes)
            .await
    }

    pub async fn delete_chap_auth(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("iscsi.auth.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }

    pub async fn targets(&self, filters: &[Filter]) -> Result<Vec<Target>> {
        self.call("iscsi.target.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_target(&self, target: &NewTarget) -> Result<Target> {
        self.call("iscsi.target.create", json!([target]), Effect::Changes)
            .await
    }

    /// `force` ends active sessions instead of refusing ("in use").
    pub async fn delete_target(&self, id: i64, force: bool) -> Result<()> {
        let _: Value = self
            .call("iscsi.target.delete", json!([id, force]), Effect::Changes)
            .await?;
        Ok(())
    }

    pub async fn extents(&self, filters: &[Filter]) -> Result<Vec<Extent>> {
        self.call("iscsi.extent.query", query_params(filters), Effect::Reads)
            .await
    }

    pub async fn create_extent(&self, extent: &NewExtent) -> Result<Extent> {
        self.call("iscsi.extent.create", json!([extent]), Effect::Changes)
            .await
    }

    pub async fn delete_extent(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("iscsi.extent.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }

    pub async fn target_extents(&self, filters: &[Filter]) -> Result<Vec<TargetExtent>> {
        self.call(
            "iscsi.targetextent.query",
            query_params(filters),
            Effect::Reads,
        )
        .await
    }

    pub async fn create_target_extent(&self, mapping: &NewTargetExtent) -> Result<TargetExtent> {
        self.call(
            "iscsi.targetextent.create",
            json!([mapping]),
            Effect::Changes,
        )
        .await
    }

    pub async fn delete_target_extent(&self, id: i64) -> Result<()> {
        let _: Value = self
            .call("iscsi.targetextent.delete", json!([id]), Effect::Changes)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_schema_types() {
        let chap = NewChapAuth {
            tag: 3,
            user: "kiln-lab".into(),
            secret: SecretString::from("0123456789abcd"),
        };
        assert_eq!(
            serde_json::to_value(&chap).unwrap(),
            json!({"tag": 3, "user": "kiln-lab", "secret": "0123456789abcd"})
        );
        assert!(!format!("{chap:?}").contains("0123456789abcd"));
        let target = NewTarget {
            name: "kiln-check".into(),
            alias: None,
            groups: vec![TargetGroup {
                portal: 2,
                initiator: Some(5),
                authmethod: AuthMethod::ChapMutual,
                auth: None,
            }],
            auth_networks: vec![],
        };
        assert_eq!(
            serde_json::to_value(&target).unwrap(),
            json!({"name": "kiln-check", "alias": null,
                   "groups": [{"portal": 2, "initiator": 5, "authmethod": "CHAP_MUTUAL", "auth": null}]})
        );
        assert_eq!(
            serde_json::to_value(NewExtent::zvol("check", "tank/k8s/check", "kiln")).unwrap(),
            json!({"name": "check", "type": "DISK", "disk": "zvol/tank/k8s/check", "comment": "kiln"})
        );
        assert_eq!(
            serde_json::to_value(ChapAuthUpdate {
                user: None,
                secret: Some("x".into())
            })
            .unwrap(),
            json!({"secret": "x"})
        );
    }
}
