//! Rotation: replacing a generated secret with a new one, and saying first
//! what that breaks, because every generated secret is also somewhere else
//! (in a VM's authorized_keys, an agent's config, a Git host, a cluster's
//! PKI).

use serde::Serialize;

use super::{ClusterNames, chap, csi_key, later, ssh, tls, tokens};
use crate::error::SecretsError;
use crate::store::{Cas, Data, SecretStore};

/// A generated entry kiln knows how to make again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Generated {
    SshKey { user: String },
    AgentToken { node: String },
    CollectorTls,
    K3sToken,
    TruenasChap,
    TruenasCsiKey,
    TalosSecrets,
    FluxDeployKey,
}

impl Generated {
    /// What entry `name` is, or `None` when kiln did not generate it.
    pub fn of(name: &str) -> Option<Self> {
        let kind = name.strip_prefix(super::PREFIX)?;
        match kind.split_once('/') {
            Some(("ssh", user)) if !user.is_empty() => Some(Self::SshKey {
                user: user.to_owned(),
            }),
            Some(("agent", node)) if !node.is_empty() => Some(Self::AgentToken {
                node: node.to_owned(),
            }),
            _ if name == tls::ENTRY => Some(Self::CollectorTls),
            _ if name == tokens::K3S_ENTRY => Some(Self::K3sToken),
            _ if name == chap::CHAP_ENTRY => Some(Self::TruenasChap),
            _ if name == csi_key::CSI_KEY_ENTRY => Some(Self::TruenasCsiKey),
            _ if name == later::TALOS_ENTRY => Some(Self::TalosSecrets),
            _ if name == later::FLUX_ENTRY => Some(Self::FluxDeployKey),
            _ => None,
        }
    }

    /// What rotating it implies, in the words the CLI prints before asking.
    pub fn implications(&self) -> String {
        match self {
            Self::SshKey { user } => format!(
                "Every existing node has the old public key in ~{user}/.ssh/authorized_keys \
                 (put there by cloud-init). After rotation kiln logs in with the new key only, \
                 so it cannot reach existing nodes until they are rebuilt (`kiln rebuild`, or \
                 `kiln node replace NAME` one by one) or the new key is added to them."
            ),
            Self::AgentToken { node } => format!(
                "The agent on `{node}` keeps sending the old token and the collector refuses \
                 its reports until `kiln agent install {node}` deploys the new one."
            ),
            Self::CollectorTls => "Every agent pins the old certificate's fingerprint. After \
                 restarting `kiln serve` with the new certificate, no agent can report until \
                 `kiln agent install` runs for every node."
                .to_owned(),
            Self::K3sToken => "The K3s token is baked into the running cluster: existing \
                 servers keep the old one and new nodes with the new one cannot join. Rotate \
                 it only together with `kiln rebuild`, which makes a new cluster."
                .to_owned(),
            Self::TruenasChap => "TrueNAS's CHAP credential and every node's iSCSI sessions \
                 hold the old secret. The next `kiln apply` writes the new one to TrueNAS; \
                 volumes the CSI driver already attached keep their sessions until they \
                 log in again, which then needs the new secret in the driver's configuration."
                .to_owned(),
            Self::TruenasCsiKey => "TrueNAS makes a new key for the CSI driver's account and \
                 the old one stops working at once: volumes already attached stay, but the \
                 driver cannot create or delete volumes until its configuration holds the \
                 new key."
                .to_owned(),
            Self::TalosSecrets => "The Talos secrets bundle is the cluster's whole PKI (CAs, \
                 bootstrap tokens). A new bundle means a new cluster: every node must be \
                 rebuilt and every talosconfig/kubeconfig is invalidated."
                .to_owned(),
            Self::FluxDeployKey => "The deploy key is imported, not generated: rotate it by \
                 adding a new deploy key on the Git host and importing its private key."
                .to_owned(),
        }
    }

    fn regenerate(&self, names: &ClusterNames) -> Result<Data, SecretsError> {
        let cluster = names.cluster.as_str();
        match self {
            Self::SshKey { .. } => ssh::generate(&format!("kiln@{cluster}")),
            Self::AgentToken { .. } => tokens::random_token("an agent token"),
            Self::K3sToken => tokens::random_token("the K3s token"),
            Self::TruenasChap => chap::generate(cluster),
            Self::CollectorTls => tls::generate(cluster, &tls::wanted_names(names)),
            Self::TruenasCsiKey => Err(SecretsError::Config(
                "only TrueNAS can make a new CSI key: `kiln secrets rotate` asks it (this \
                 store cannot)"
                    .to_owned(),
            )),
            Self::TalosSecrets | Self::FluxDeployKey => Err(SecretsError::Config(format!(
                "kiln cannot make a new {} itself. {}",
                match self {
                    Self::TalosSecrets => "Talos secrets bundle",
                    _ => "Flux deploy key",
                },
                self.implications()
            ))),
        }
    }
}

/// Replaces the generated entry `name` with a new value, under
/// check-and-set against the version that was read, so a concurrent
/// rotation is detected rather than silently lost. Returns the new version.
pub async fn rotate<S: SecretStore>(
    store: &S,
    names: &ClusterNames,
    name: &str,
) -> Result<u64, SecretsError> {
    let kind = Generated::of(name).ok_or_else(|| {
        SecretsError::Config(format!(
            "`{name}` is not a secret kiln generates; change it with `kiln secrets set {name}`"
        ))
    })?;
    let data = kind.regenerate(names)?;
    let cas = match store.read(name).await? {
        Some(entry) => Cas::Version(entry.meta.version),
        None => Cas::Absent,
    };
    store.write(name, data, cas).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_what_kiln_generates() {
        assert_eq!(
            Generated::of("generated/ssh/kiln"),
            Some(Generated::SshKey {
                user: "kiln".into()
            })
        );
        assert_eq!(
            Generated::of("generated/agent/node1"),
            Some(Generated::AgentToken {
                node: "node1".into()
            })
        );
        assert_eq!(
            Generated::of("generated/collector/tls"),
            Some(Generated::CollectorTls)
        );
        assert_eq!(
            Generated::of("generated/k3s/token"),
            Some(Generated::K3sToken)
        );
        assert_eq!(
            Generated::of("generated/truenas/chap"),
            Some(Generated::TruenasChap)
        );
        assert_eq!(Generated::of("vault-secret-id"), None);
        assert_eq!(Generated::of("generated/ssh/"), None);
        assert_eq!(
            Generated::of("ssh/kiln"),
            None,
            "a user entry, not generated"
        );
    }
}
