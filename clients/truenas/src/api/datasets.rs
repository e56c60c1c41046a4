//! `pool.dataset.*`: filesystems (NFS parents) and zvols (iSCSI).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Filter, query_params};
use crate::client::{Effect, TruenasClient};
use crate::error::Result;

/// `pool.dataset.create`'s argument: a filesystem or a zvol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewDataset {
    /// The full path, `pool/a/b`.
    pub name: String,
    #[serde(flatten)]
    pub kind: DatasetKind,
    /// Keys must contain `:` (`kiln:cluster`); values are strings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<UserProperty>,
    pub create_ancestors: bool,
}

/// The `type` discriminator and the fields only zvols have.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum DatasetKind {
    Filesystem,
    Volume {
        /// Bytes; a multiple of `volblocksize`.
        volsize: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        volblocksize: Option<VolBlockSize>,
        /// Thin provisioning.
        sparse: bool,
    },
}

/// `volblocksize`, a string enum in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VolBlockSize {
    #[serde(rename = "4K")]
    K4,
    #[serde(rename = "8K")]
    K8,
    #[serde(rename = "16K")]
    K16,
    #[serde(rename = "32K")]
    K32,
    #[serde(rename = "64K")]
    K64,
    #[serde(rename = "128K")]
    K128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserProperty {
    pub key: String,
    pub value: String,
}

/// A ZFS property as query results carry it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZfsProperty {
    #[serde(default)]
    pub parsed: Value,
    #[serde(default)]
    pub rawvalue: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

impl ZfsProperty {
    fn as_u64(&self) -> Option<u64> {
        self.parsed
            .as_u64()
            .or_else(|| self.rawvalue.as_deref()?.parse().ok())
    }
}

/// A `pool.dataset.query` entry (the fields kiln reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    /// The full path, `tank/k8s/nfs`.
    pub id: String,
    /// `FILESYSTEM` or `VOLUME`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub pool: String,
    /// Null for zvols.
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub user_properties: BTreeMap<String, Value>,
    #[serde(default)]
    pub children: Vec<Value>,
    #[serde(default)]
    pub used: Option<ZfsProperty>,
    #[serde(default)]
    pub volsize: Option<ZfsProperty>,
}

impl Dataset {
    pub fn is_volume(&self) -> bool {
        self.kind == "VOLUME"
    }

    /// A user property's value: a plain string, or `{"value": …}` as the
    /// middleware's property objects have it.
    pub fn user_property(&self, key: &str) -> Option<&str> {
        let value = self.user_properties.get(key)?;
        value
            .as_str()
            .or_else(|| value.get("value").and_then(Value::as_str))
    }

    /// Bytes used by the dataset and everything below it.
    pub fn used_bytes(&self) -> Option<u64> {
        self.used.as_ref().and_then(ZfsProperty::as_u64)
    }

    pub fn volsize_bytes(&self) -> Option<u64> {
        self.volsize.as_ref().and_then(ZfsProperty::as_u64)
    }
}

impl TruenasClient {
    /// `pool.dataset.query` without children (they can make answers huge).
    pub async fn datasets(&self, filters: &[Filter]) -> Result<Vec<Dataset>> {
        let mut params = query_params(filters);
        if let Some(list) = params.as_array_mut() {
            list.push(json!({"extra": {
                "flat": true,
                "retrieve_children": false,
                "properties": ["used", "volsize"],
            }}));
        }
        self.call("pool.dataset.query", params, Effect::Reads).await
    }

    /// `pool.dataset.get_instance`; `None` when there is no such dataset.
    pub async fn dataset(&self, id: &str) -> Result<Option<Dataset>> {
        match self
            .call("pool.dataset.get_instance", json!([id]), Effect::Reads)
            .await
        {
            Ok(dataset) => Ok(Some(dataset)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `pool.dataset.create`.
    pub async fn create_dataset(&self, dataset: &NewDataset) -> Result<Dataset> {
        self.call("pool.dataset.create", json!([dataset]), Effect::Changes)
            .await
    }

    /// `pool.dataset.delete`: true when deleted, false when it did not
    /// exist. Beware: deleting a zvol also deletes its iSCSI extent and
    /// target-extent, and deleting a filesystem its NFS shares.
    pub async fn delete_dataset(&self, id: &str, recursive: bool) -> Result<bool> {
        let deleted: Option<bool> = self
            .call(
                "pool.dataset.delete",
                json!([id, {"recursive": recursive, "force": false}]),
                Effect::Changes,
            )
            .await?;
        Ok(deleted.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_datasets_serialize_as_the_schema_says() {
        let filesystem = NewDataset {
            name: "tank/k8s/lab/nfs".into(),
            kind: DatasetKind::Filesystem,
            user_properties: vec![UserProperty {
                key: "kiln:cluster".into(),
                value: "lab".into(),
            }],
            create_ancestors: true,
        };
        assert_eq!(
            serde_json::to_value(&filesystem).unwrap(),
            json!({"name": "tank/k8s/lab/nfs", "type": "FILESYSTEM", "create_ancestors": true,
                   "user_properties": [{"key": "kiln:cluster", "value": "lab"}]})
        );
        let volume = NewDataset {
            name: "tank/k8s/lab/iscsi/check".into(),
            kind: DatasetKind::Volume {
                volsize: 64 << 20,
                volblocksize: Some(VolBlockSize::K16),
                sparse: true,
            },
            user_properties: vec![],
            create_ancestors: false,
        };
        assert_eq!(
            serde_json::to_value(&volume).unwrap(),
            json!({"name": "tank/k8s/lab/iscsi/check", "type": "VOLUME", "volsize": 67108864,
                   "volblocksize": "16K", "sparse": true, "create_ancestors": false})
        );
    }

    #[test]
    fn reads_entries_with_property_objects() {
        let dataset: Dataset = serde_json::from_value(json!({
            "id": "tank/k8s", "type": "FILESYSTEM", "name": "tank/k8s", "pool": "tank",
            "mountpoint": "/mnt/tank/k8s", "encrypted": false, "children": [],
            "user_properties": {"kiln:cluster": {"value": "lab", "rawvalue": "lab", "source": "LOCAL", "parsed": "lab"},
                                "plain:prop": "x"},
            "used": {"parsed": 4096, "rawvalue": "4096", "value": "4K", "source": "NONE"}
        }))
        .unwrap();
        assert_eq!(dataset.user_property("kiln:cluster"), Some("lab"));
        assert_eq!(dataset.user_property("plain:prop"), Some("x"));
        assert_eq!(dataset.used_bytes(), Some(4096));
        assert!(!dataset.is_volume());
    }
}
