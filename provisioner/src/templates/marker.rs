//! The block kiln writes into a template's description: which cluster and
//! template it is, and the checksum of the image it was made from, so a
//! later run can tell an up-to-date template from one to replace.

use std::fmt;

use crate::plan::BlockFields;

/// Not `kiln:v1`: a template is no node, and the planner of `kiln apply`
/// must never read one as such.
const PREFIX: &str = "kiln-template:v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMarker {
    pub cluster: String,
    pub template: String,
    pub image: String,
    /// `sha256:<hex>` or `sha512:<hex>`.
    pub checksum: String,
    pub kiln_version: String,
    pub run: String,
}

impl TemplateMarker {
    /// Finds and parses the block in a VM's description.
    pub fn parse(description: &str) -> Option<Self> {
        let block = BlockFields::find(description, PREFIX)?;
        let field = |name: &str| block.get(name);
        Some(Self {
            cluster: field("cluster")?,
            template: field("template")?,
            image: field("image")?,
            checksum: field("checksum")?,
            kiln_version: field("kiln")?,
            run: field("run")?,
        })
    }

    /// The whole description: a sentence for people, the block for kiln.
    pub fn description(&self) -> String {
        format!(
            "Template `{}` of kiln cluster {} (image {}). Made by `kiln image ensure`; nodes are cloned from it.\n{self}\n",
            self.template, self.cluster, self.image
        )
    }
}

impl fmt::Display for TemplateMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} cluster={} template={} image={} checksum={} kiln={} run={}",
            self.cluster, self.template, self.image, self.checksum, self.kiln_version, self.run
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> TemplateMarker {
        TemplateMarker {
            cluster: "lab".into(),
            template: "debian-12".into(),
            image: "debian-12".into(),
            checksum: format!("sha512:{}", "ab".repeat(64)),
            kiln_version: "0.1.0".into(),
            run: "0192f0c2-0000-7000-8000-000000000000".into(),
        }
    }

    #[test]
    fn the_block_round_trips_and_fits_a_description() {
        let description = marker().description();
        assert_eq!(TemplateMarker::parse(&description), Some(marker()));
        assert!(description.len() < 8192);
    }

    #[test]
    fn a_node_marker_is_no_template_marker_and_the_reverse() {
        let node = "kiln:v1 cluster=lab node=a stage=ready fingerprint=f image=i template=9000 kiln=0 run=r";
        assert_eq!(TemplateMarker::parse(node), None);
        assert_eq!(crate::plan::Marker::parse(&marker().description()), None);
        assert_eq!(
            TemplateMarker::parse("kiln-template:v1 cluster=lab template=x"),
            None
        );
    }
}
