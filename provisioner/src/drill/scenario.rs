//! What a scenario breaks: one node, every node of one Proxmox host, or all.

use std::collections::BTreeSet;

use clap::ValueEnum;
use rand::seq::IndexedRandom;
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::plan::{DesiredVm, ObservedVm, ownership_tag};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One node's VM is stopped hard and deleted.
    NodeLoss,
    /// Every node on one Proxmox node.
    HostLoss,
    /// Every node of the cluster.
    ClusterLoss,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeLoss => "node-loss",
            Self::HostLoss => "host-loss",
            Self::ClusterLoss => "cluster-loss",
        }
    }
}

/// A VM the drill breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub node: String,
    pub pve_node: String,
    pub vmid: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("`{0}` is not a VM node of the inventory")]
    UnknownNode(String),
    #[error("no inventory node runs on Proxmox node `{0}`")]
    UnknownHost(String),
    #[error(
        "node `{0}` has no VM of this cluster on Proxmox: there is nothing to break (run `kiln apply` first)"
    )]
    Missing(String),
    #[error("the inventory has no VM nodes")]
    Empty,
}

/// The VMs `scenario` breaks. `chosen` names the node (node-loss) or the
/// Proxmox node (host-loss); without it one is drawn with `seed`.
pub fn targets(
    scenario: Scenario,
    cluster: &str,
    desired: &[DesiredVm],
    observed: &[ObservedVm],
    chosen: Option<&str>,
    seed: u64,
) -> Result<Vec<Target>, TargetError> {
    if desired.is_empty() {
        return Err(TargetError::Empty);
    }
    let tag = ownership_tag(cluster);
    let mut rng = StdRng::seed_from_u64(seed);
    let nodes: Vec<&DesiredVm> = match scenario {
        Scenario::NodeLoss => {
            let node = match chosen {
                Some(name) => desired
                    .iter()
                    .find(|vm| vm.node == name)
                    .ok_or_else(|| TargetError::UnknownNode(name.to_owned()))?,
                None => desired.choose(&mut rng).ok_or(TargetError::Empty)?,
            };
            vec![node]
        }
        Scenario::HostLoss => {
            let hosts: BTreeSet<&str> = desired.iter().map(|vm| vm.pve_node.as_str()).collect();
            let host = match chosen {
                Some(name) => *hosts
                    .get(name)
                    .ok_or_else(|| TargetError::UnknownHost(name.to_owned()))?,
                None => {
                    let hosts: Vec<&str> = hosts.into_iter().collect();
                    *hosts.choose(&mut rng).ok_or(TargetError::Empty)?
                }
            };
            desired.iter().filter(|vm| vm.pve_node == host).collect()
        }
        Scenario::ClusterLoss => desired.iter().collect(),
    };
    nodes
        .into_iter()
        .map(|wanted| {
            observed
                .iter()
                .find(|vm| vm.name == wanted.node && vm.tags.contains(&tag))
                .map(|vm| Target {
                    node: wanted.node.clone(),
                    pve_node: vm.pve_node.clone(),
                    vmid: vm.vmid,
                })
                .ok_or_else(|| TargetError::Missing(wanted.node.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn desired(node: &str, pve_node: &str) -> DesiredVm {
        DesiredVm {
            node: node.into(),
            pve_node: pve_node.into(),
            vmid: None,
            image: "deb".into(),
            template: "deb".into(),
            template_vmid: 9000,
            cores: 1,
            memory_mib: 1024,
            disks: Vec::new(),
            ipv4: "10.77.0.11/24".into(),
            ipv6: None,
            mac: None,
            tags: BTreeSet::new(),
            fingerprint: String::new(),
        }
    }

    fn observed(node: &str, pve_node: &str, vmid: u32, tag: &str) -> ObservedVm {
        ObservedVm {
            vmid,
            pve_node: pve_node.into(),
            name: node.into(),
            tags: BTreeSet::from([tag.to_owned()]),
            running: true,
            lock: None,
            template: false,
            config: None,
        }
    }

    fn lab() -> (Vec<DesiredVm>, Vec<ObservedVm>) {
        (
            vec![
                desired("a", "pve1"),
                desired("b", "pve2"),
                desired("c", "pve1"),
            ],
            vec![
                observed("a", "pve1", 100, "kiln-lab"),
                observed("b", "pve2", 101, "kiln-lab"),
                observed("c", "pve1", 102, "kiln-lab"),
            ],
        )
    }

    fn names(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|target| target.node.as_str()).collect()
    }

    #[test]
    fn each_scenario_breaks_what_it_says() {
        let (desired, observed) = lab();
        let one = targets(Scenario::NodeLoss, "lab", &desired, &observed, Some("b"), 0).unwrap();
        assert_eq!(
            one,
            [Target {
                node: "b".into(),
                pve_node: "pve2".into(),
                vmid: 101
            }]
        );
        let host = targets(
            Scenario::HostLoss,
            "lab",
            &desired,
            &observed,
            Some("pve1"),
            0,
        )
        .unwrap();
        assert_eq!(names(&host), ["a", "c"]);
        let all = targets(Scenario::ClusterLoss, "lab", &desired, &observed, None, 0).unwrap();
        assert_eq!(names(&all), ["a", "b", "c"]);
    }

    #[test]
    fn a_random_pick_is_repeatable_by_seed() {
        let (desired, observed) = lab();
        let picks: BTreeSet<String> = (0..32)
            .map(|seed| {
                let first =
                    targets(Scenario::NodeLoss, "lab", &desired, &observed, None, seed).unwrap();
                let again =
                    targets(Scenario::NodeLoss, "lab", &desired, &observed, None, seed).unwrap();
                assert_eq!(first, again, "seed {seed}");
                first[0].node.clone()
            })
            .collect();
        assert!(picks.len() > 1, "32 seeds always picked {picks:?}");
    }

    #[test]
    fn unknown_names_and_foreign_vms_are_refused() {
        let (desired, mut observed) = lab();
        assert_eq!(
            targets(
                Scenario::NodeLoss,
                "lab",
                &desired,
                &observed,
                Some("zz"),
                0
            ),
            Err(TargetError::UnknownNode("zz".into()))
        );
        assert_eq!(
            targets(
                Scenario::HostLoss,
                "lab",
                &desired,
                &observed,
                Some("pve9"),
                0
            ),
            Err(TargetError::UnknownHost("pve9".into()))
        );
        observed[1].tags = BTreeSet::from(["someone-else".to_owned()]);
        assert_eq!(
            targets(Scenario::NodeLoss, "lab", &desired, &observed, Some("b"), 0),
            Err(TargetError::Missing("b".into()))
        );
    }
}
