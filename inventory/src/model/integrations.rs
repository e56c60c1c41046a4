//! Systems the cluster uses once it runs: TrueNAS storage and Flux GitOps.

use std::net::{IpAddr, SocketAddr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tls;
use crate::values::{EnvOr, HttpUrl, SecretRef, Version};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub truenas: TrueNas,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrueNas {
    /// The TrueNAS API, e.g. https://nas.lan (or env:VAR).
    pub endpoint: EnvOr<HttpUrl>,
    /// A reference to a TrueNAS API key.
    pub api_key: SecretRef,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<Iscsi>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<Nfs>,
    /// Make democratic-csi's own TrueNAS account (a user, a privilege with
    /// the least roles its calls need, an API key kept in kiln's store).
    /// kiln's own key then needs the account roles too (docs/storage.md).
    #[serde(default = "yes")]
    pub csi_account: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Iscsi {
    /// The iSCSI portal, `address:port` (or an address: port 3260).
    pub portal: String,
    /// The parent dataset volumes are made in, e.g. tank/k8s/iscsi.
    pub dataset: String,
    /// The prefix of target names kiln (and the CSI driver) create.
    #[serde(default = "default_target_prefix")]
    pub target_prefix: String,
    /// Require CHAP on the cluster's targets, with a secret kiln generates
    /// and keeps in the store.
    #[serde(default)]
    pub chap: bool,
}

/// The iSCSI port TrueNAS listens on unless told otherwise.
pub const ISCSI_PORT: u16 = 3260;

impl Iscsi {
    /// The portal as a socket address (an address alone takes port 3260);
    /// `None` for a name, which the inventory's checks refuse.
    pub fn portal_address(&self) -> Option<SocketAddr> {
        self.portal.parse::<SocketAddr>().ok().or_else(|| {
            self.portal
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, ISCSI_PORT))
        })
    }
}

fn default_target_prefix() -> String {
    "kiln".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nfs {
    /// The NFS server's address as the nodes reach it.
    pub server: String,
    /// The parent dataset shares are made in, e.g. tank/k8s/nfs.
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gitops {
    pub flux: Flux,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flux {
    /// The Git repository, e.g. ssh://git@git.lan/home/cluster.git.
    pub repo: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The path in the repository Flux reconciles, e.g. clusters/home.
    pub path: String,
    /// A reference to the SSH deploy key Flux reads the repository with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_key: Option<SecretRef>,
    /// A reference to the age key SOPS decrypts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sops_age_key: Option<SecretRef>,
    /// The Flux version to install. Default: the one kiln was tested with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

fn default_branch() -> String {
    "main".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iscsi(portal: &str) -> Iscsi {
        Iscsi {
            portal: portal.to_owned(),
            dataset: "tank/k8s/iscsi".to_owned(),
            target_prefix: default_target_prefix(),
            chap: false,
        }
    }

    #[test]
    fn a_portal_is_an_address_with_or_without_a_port() {
        let address = |portal: &str| iscsi(portal).portal_address();
        assert_eq!(
            address("10.0.0.5:3261"),
            Some("10.0.0.5:3261".parse().unwrap())
        );
        assert_eq!(address("10.0.0.5"), Some("10.0.0.5:3260".parse().unwrap()));
        assert_eq!(
            address("[fd00::5]:3260"),
            Some("[fd00::5]:3260".parse().unwrap())
        );
        assert_eq!(address("nas.lan:3260"), None);
    }
}
