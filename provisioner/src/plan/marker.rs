//! The machine-readable block kiln writes into every VM's description: it
//! says which cluster and node the VM is, how far provisioning got, and the
//! fingerprint of the settings it was made with. Proxmox is the source of
//! truth; this block is how kiln reads its own work back.

use std::fmt;

/// The line prefix that starts the block; `v1` is the format's version.
const PREFIX: &str = "kiln:v1";

/// The `key=value` fields of the first description line that starts with
/// a block's prefix (this one, or a template's).
pub(crate) struct BlockFields<'a>(&'a str);

impl<'a> BlockFields<'a> {
    pub(crate) fn find(description: &'a str, prefix: &str) -> Option<Self> {
        description
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(Self)
    }

    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    }
}

/// How far a VM's provisioning got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Cloned; its configuration was not written yet.
    Cloned,
    /// Configured with the settings the fingerprint describes.
    Ready,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub cluster: String,
    pub node: String,
    pub stage: Stage,
    /// The fingerprint of the settings the VM was configured with.
    pub fingerprint: String,
    /// The image and template copy it was cloned from: a change replaces it.
    pub image: String,
    pub template_vmid: u32,
    pub kiln_version: String,
    pub run: String,
}

impl Marker {
    /// Finds and parses the block in a VM's description.
    pub fn parse(description: &str) -> Option<Self> {
        let block = BlockFields::find(description, PREFIX)?;
        let field = |name: &str| block.get(name);
        let stage = match field("stage")?.as_str() {
            "cloned" => Stage::Cloned,
            "ready" => Stage::Ready,
            _ => return None,
        };
        Some(Self {
            cluster: field("cluster")?,
            node: field("node")?,
            stage,
            fingerprint: field("fingerprint")?,
            image: field("image")?,
            template_vmid: field("template")?.parse().ok()?,
            kiln_version: field("kiln")?,
            run: field("run")?,
        })
    }

    /// The whole description kiln writes: a sentence for people, the block
    /// for kiln.
    pub fn description(&self) -> String {
        format!(
            "Managed by kiln (cluster {}, node {}). Changes made here are overwritten by the next `kiln apply`.\n{self}\n",
            self.cluster, self.node
        )
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Cloned => "cloned",
            Stage::Ready => "ready",
        };
        write!(
            f,
            "{PREFIX} cluster={} node={} stage={stage} fingerprint={} image={} template={} kiln={} run={}",
            self.cluster,
            self.node,
            self.fingerprint,
            self.image,
            self.template_vmid,
            self.kiln_version,
            self.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker {
            cluster: "home".into(),
            node: "cp1".into(),
            stage: Stage::Ready,
            fingerprint: "0123456789abcdef".into(),
            image: "debian-12".into(),
            template_vmid: 9000,
            kiln_version: "0.1.0".into(),
            run: "0192f0c2-0000-7000-8000-000000000000".into(),
        }
    }

    #[test]
    fn the_block_round_trips_through_a_description() {
        let description = marker().description();
        assert_eq!(Marker::parse(&description), Some(marker()));
        assert!(description.len() < 8192, "PVE limits descriptions to 8 KiB");
    }

    #[test]
    fn a_description_without_a_complete_block_has_no_marker() {
        assert_eq!(Marker::parse("a VM someone made by hand"), None);
        assert_eq!(Marker::parse("kiln:v1 cluster=home node=cp1"), None);
        assert_eq!(
            Marker::parse(&marker().to_string().replace("stage=ready", "stage=odd")),
            None
        );
    }
}
