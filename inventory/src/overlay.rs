//! Profiles applied: the ephemeral copy of a cluster (`kiln nightly`).

use crate::model::{Inventory, Node, Profile};
use crate::values::Label;

impl Inventory {
    /// The VM nodes a profile copies, in inventory order; or, per unknown
    /// entry of the profile's `nodes`, its position and what is wrong.
    pub(crate) fn profile_nodes(
        &self,
        profile: &Label,
    ) -> Result<Vec<&Node>, Vec<(usize, String)>> {
        let Some(profile_spec) = self.profiles.get(profile) else {
            return Ok(Vec::new());
        };
        let Some(wanted) = &profile_spec.nodes else {
            return Ok(self.nodes.iter().filter(|node| node.is_vm()).collect());
        };
        let mut problems = Vec::new();
        for (position, name) in wanted.iter().enumerate() {
            match self.nodes.iter().find(|node| &node.name == name) {
                None => problems.push((position, format!("profile `{profile}` names node `{name}`, which is not in `nodes`"))),
                Some(node) if !node.is_vm() => problems.push((
                    position,
                    format!("profile `{profile}` names node `{name}`, which is bare metal: only VMs can be copied"),
                )),
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(self
            .nodes
            .iter()
            .filter(|node| wanted.contains(&node.name))
            .collect())
    }

    pub(crate) fn profile_cluster_name(
        &self,
        name: &Label,
        profile: &Profile,
    ) -> Result<Label, String> {
        match &profile.cluster_name {
            Some(cluster_name) => Ok(cluster_name.clone()),
            None => Label::joined(&[self.cluster.name.as_str(), name.as_str()]).map_err(|_| {
                format!(
                    "the default cluster name `{}-{name}` is not a valid label; set `cluster_name`",
                    self.cluster.name
                )
            }),
        }
    }

    pub(crate) fn profile_prefix(&self, name: &Label, profile: &Profile) -> String {
        profile
            .name_prefix
            .clone()
            .unwrap_or_else(|| format!("{name}-"))
    }

    /// The ephemeral copy a profile describes: its own cluster name, node
    /// names, VMIDs and addresses; only the VM nodes it selects. It attaches
    /// no TrueNAS storage: the NAS is the live cluster's, and a copy torn
    /// down an hour later must leave nothing there. Only call
    /// this on a validated inventory; it fails for a profile that does not
    /// exist.
    pub fn with_profile(&self, name: &str) -> Result<Inventory, String> {
        let (label, profile) = self
            .profiles
            .iter()
            .find(|(label, _)| label.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.profiles.keys().map(Label::as_str).collect();
                format!(
                    "no profile `{name}` in the inventory (profiles: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            })?;
        let selected = self.profile_nodes(label).map_err(|problems| {
            problems
                .into_iter()
                .map(|(_, problem)| problem)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let needed = selected.len() as u64;
        if profile.vmids.count() < needed || profile.ips.count() < needed {
            return Err(format!(
                "profile `{name}` has too few VMIDs or addresses for its {needed} nodes"
            ));
        }
        let prefix = self.profile_prefix(label, profile);
        let mut copy = self.clone();
        copy.cluster.name = self.profile_cluster_name(label, profile)?;
        copy.network.vip = profile.vip;
        copy.profiles.clear();
        copy.storage = None;
        copy.nodes = selected
            .into_iter()
            .zip(profile.vmids.as_range())
            .zip(profile.ips.iter())
            .map(|((node, vmid), ip)| {
                let mut node = node.clone();
                node.name = format!("{prefix}{}", node.name).parse()?;
                node.vmid = Some(vmid.try_into()?);
                node.ip = ip;
                node.ipv6 = None;
                node.mac = None;
                Ok(node)
            })
            .collect::<Result<_, String>>()?;
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_profile_copy_attaches_no_storage() {
        let text = "cluster: {name: home}
proxmox: {endpoint: https://pve:8006, auth: {token: env:T}, nodes: [pve1]}
network: {ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}}
images: {deb: {golden: {recipe: debian-12}}}
templates: {deb: {image: deb, vmids: {pve1: 9000}}}
defaults: {template: deb}
nodes:
  - {name: a, role: host, pve_node: pve1, ip: 10.0.0.11}
storage:
  truenas:
    endpoint: https://nas.lan
    api_key: env:NAS_KEY
    nfs: {server: 10.0.0.5, dataset: tank/k8s/nfs}
profiles:
  nightly: {vmids: 9100-9199, ips: 10.0.0.100-10.0.0.149}
";
        let inventory = crate::parse("kiln.yaml", text).expect("inventory");
        assert!(inventory.storage.is_some());
        let copy = inventory.with_profile("nightly").expect("copy");
        assert_eq!(copy.cluster.name.as_str(), "home-nightly");
        assert!(copy.storage.is_none());
    }
}
