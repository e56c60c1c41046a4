//! The TrueNAS side of `kiln storage check`: a small zvol served as LUN 0
//! of a target of its own, and a dataset exported over NFS, each made for
//! one check and removed after it.
//!
//! These are the only datasets kiln ever deletes, and only through the
//! handle their creation returned — never by name — so a check cannot
//! remove anything it did not make. They carry the user property
//! `kiln:check`, so one left behind by an interrupted check can be told
//! apart from real data. If making one step fails, what was already made
//! is removed again before the error is returned.

use crate::api::{
    AuthMethod, DatasetKind, NewDataset, NewExtent, NewNfsShare, NewTarget, NewTargetExtent,
    TargetGroup, UserProperty, VolBlockSize,
};
use crate::client::TruenasClient;
use crate::error::{Error, Result};

/// Marks the datasets a check makes.
const CHECK_PROPERTY: &str = "kiln:check";

/// Where the test LUN goes and how nodes reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLunRequest {
    /// Target, extent and zvol name: lower-case `[a-z0-9-]`, at most 64.
    pub name: String,
    /// The dataset the zvol goes under (the iSCSI parent).
    pub parent: String,
    /// A multiple of 16 KiB.
    pub size_bytes: u64,
    pub portal_id: i64,
    pub initiator_group_id: i64,
    /// CHAP credential tag, when the cluster uses CHAP.
    pub chap_tag: Option<i64>,
}

/// A test LUN that exists on the NAS until [`TruenasClient::remove_check_lun`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLun {
    /// `<basename>:<name>`: what nodes log in to.
    pub iqn: String,
    pub lun: i64,
    pub zvol: String,
    target_id: i64,
    extent_id: Option<i64>,
    mapping_id: Option<i64>,
}

/// A test NFS export that exists until [`TruenasClient::remove_check_share`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckShare {
    /// What nodes mount: `/mnt/<dataset>`.
    pub path: String,
    pub dataset: String,
    share_id: Option<i64>,
}

fn check_name(name: &str) -> Result<()> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if fits {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "check name {name:?}: use 1 to 64 of a-z, 0-9 and -"
        )))
    }
}

fn marked(name: String, kind: DatasetKind) -> NewDataset {
    NewDataset {
        name,
        kind,
        user_properties: vec![UserProperty {
            key: CHECK_PROPERTY.to_owned(),
            value: "true".to_owned(),
        }],
        create_ancestors: false,
    }
}

impl TruenasClient {
    /// Makes the zvol, its extent, a target through the cluster's portal,
    /// initiator group (and CHAP), and maps the extent as LUN 0.
    pub async fn create_check_lun(&self, request: &CheckLunRequest) -> Result<CheckLun> {
        check_name(&request.name)?;
        let basename = self.iscsi_global().await?.basename;
        let zvol = format!("{}/{}", request.parent, request.name);
        let volume = DatasetKind::Volume {
            volsize: request.size_bytes,
            volblocksize: Some(VolBlockSize::K16),
            sparse: true,
        };
        self.create_dataset(&marked(zvol.clone(), volume)).await?;
        let (authmethod, auth) = match request.chap_tag {
            Some(tag) => (AuthMethod::Chap, Some(tag)),
            None => (AuthMethod::None, None),
        };
        let target = NewTarget {
            name: request.name.clone(),
            alias: None,
            groups: vec![TargetGroup {
                portal: request.portal_id,
                initiator: Some(request.initiator_group_id),
                authmethod,
                auth,
            }],
            auth_networks: Vec::new(),
        };
        let target = match self.create_target(&target).await {
            Ok(target) => target,
            Err(error) => {
                self.undo(self.delete_dataset(&zvol, false).await.map(drop));
                return Err(error);
            }
        };
        let mut lun = CheckLun {
            iqn: format!("{basename}:{}", request.name),
            lun: 0,
            zvol,
            target_id: target.id,
            extent_id: None,
            mapping_id: None,
        };
        if let Err(error) = self.serve_check_lun(&mut lun, &request.name).await {
            self.undo(self.remove_check_lun(lun).await);
            return Err(error);
        }
        Ok(lun)
    }

    async fn serve_check_lun(&self, lun: &mut CheckLun, name: &str) -> Result<()> {
        let extent = NewExtent::zvol(name, &lun.zvol, "kiln storage check");
        let extent_id = self.create_extent(&extent).await?.id;
        lun.extent_id = Some(extent_id);
        let mapping = NewTargetExtent {
            target: lun.target_id,
            extent: extent_id,
            lunid: Some(lun.lun),
        };
        lun.mapping_id = Some(self.create_target_extent(&mapping).await?.id);
        Ok(())
    }

    /// Removes a test LUN: mapping, extent, target (ending sessions a
    /// failed check left), then the zvol.
    pub async fn remove_check_lun(&self, lun: CheckLun) -> Result<()> {
        if let Some(mapping) = lun.mapping_id {
            self.delete_target_extent(mapping).await?;
        }
        if let Some(extent) = lun.extent_id {
            self.delete_extent(extent).await?;
        }
        self.delete_target(lun.target_id, true).await?;
        self.delete_dataset(&lun.zvol, false).await?;
        Ok(())
    }

    /// Makes a dataset `<parent>/<name>` exported read-write to `networks`,
    /// root mapped to root (so a node can write as root).
    pub async fn create_check_share(
        &self,
        name: &str,
        parent: &str,
        networks: &[String],
    ) -> Result<CheckShare> {
        check_name(name)?;
        let dataset = format!("{parent}/{name}");
        self.create_dataset(&marked(dataset.clone(), DatasetKind::Filesystem))
            .await?;
        let mut share = CheckShare {
            path: format!("/mnt/{dataset}"),
            dataset,
            share_id: None,
        };
        let export = NewNfsShare {
            path: share.path.clone(),
            comment: "kiln storage check".to_owned(),
            networks: networks.to_vec(),
            hosts: Vec::new(),
            ro: false,
            maproot_user: Some("root".to_owned()),
            maproot_group: Some("root".to_owned()),
            enabled: true,
        };
        match self.create_nfs_share(&export).await {
            Ok(created) => share.share_id = Some(created.id),
            Err(error) => {
                self.undo(self.remove_check_share(share).await);
                return Err(error);
            }
        }
        Ok(share)
    }

    /// Removes a test export and its dataset (with what the check wrote).
    pub async fn remove_check_share(&self, share: CheckShare) -> Result<()> {
        if let Some(id) = share.share_id {
            self.delete_nfs_share(id).await?;
        }
        self.delete_dataset(&share.dataset, false).await?;
        Ok(())
    }

    /// Cleanup after a failure: its own failure is logged, the original
    /// error is what the caller sees.
    fn undo(&self, outcome: Result<()>) {
        if let Err(error) = outcome {
            tracing::warn!(%error, "cleanup after a failed storage-check step");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_fit_target_and_extent_rules() {
        assert!(check_name("kiln-check-node-1").is_ok());
        for bad in ["", "Upper", "under_score", "dot.ted", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
