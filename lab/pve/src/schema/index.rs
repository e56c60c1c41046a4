//! Loads the embedded PVE 9.1 schema and finds the path template for a request path.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use kiln_lab_core::LabError;

/// The schema as shipped in `lab/pve/schema/` (see the README there for provenance and
/// license).
const SCHEMA_JSON: &str = include_str!("../../schema/pve-api-schema.json");

/// One method of one path, as the schema describes it.
#[derive(Debug, Clone)]
pub struct MethodSchema {
    /// The `parameters` object: `properties`, `additionalProperties`.
    pub parameters: Value,
}

#[derive(Debug)]
struct PathNode {
    template: String,
    segments: Vec<Segment>,
    methods: HashMap<String, MethodSchema>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Variable(String),
}

/// The result of matching a request path against the schema.
#[derive(Debug, Clone)]
pub struct PathMatch<'a> {
    /// The schema's template, e.g. `/nodes/{node}/qemu/{vmid}/config`.
    pub template: &'a str,
    /// Values of the template variables, percent-decoded.
    pub path_params: BTreeMap<String, String>,
    methods: &'a HashMap<String, MethodSchema>,
}

impl PathMatch<'_> {
    /// The schema of `method` on this path, if the schema defines it.
    pub fn method(&self, method: &str) -> Option<&MethodSchema> {
        self.methods.get(method)
    }
}

/// All 435 path nodes of the schema, ready for lookup.
#[derive(Debug)]
pub struct ApiSchema {
    nodes: Vec<PathNode>,
}

impl ApiSchema {
    /// Parses the embedded schema.
    pub fn load() -> Result<Self, LabError> {
        let tree: Value =
            serde_json::from_str(SCHEMA_JSON).map_err(|e| schema_error(e.to_string()))?;
        let roots = tree
            .as_array()
            .ok_or_else(|| schema_error("top level is not an array".into()))?;
        let mut nodes = Vec::new();
        for root in roots {
            collect(root, &mut nodes)?;
        }
        Ok(Self { nodes })
    }

    /// Finds the template matching `path` (below `/api2/json`). Literal segments win over
    /// variables, so `/nodes/{node}/qemu/{vmid}/status/current` is not taken for a `{vmid}`.
    pub fn lookup(&self, path: &str) -> Option<PathMatch<'_>> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let parts: Vec<&str> = if parts == [""] { Vec::new() } else { parts };
        let mut best: Option<(usize, &PathNode)> = None;
        for node in &self.nodes {
            if node.segments.len() != parts.len() {
                continue;
            }
            let mut literals = 0;
            let matched = node
                .segments
                .iter()
                .zip(&parts)
                .all(|(seg, part)| match seg {
                    Segment::Literal(lit) => {
                        literals += 1;
                        lit == part
                    }
                    Segment::Variable(_) => !part.is_empty(),
                });
            if matched && best.is_none_or(|(score, _)| literals > score) {
                best = Some((literals, node));
            }
        }
        let (_, node) = best?;
        let mut path_params = BTreeMap::new();
        for (seg, part) in node.segments.iter().zip(&parts) {
            if let Segment::Variable(name) = seg {
                let decoded = percent_encoding::percent_decode_str(part)
                    .decode_utf8_lossy()
                    .into_owned();
                path_params.insert(name.clone(), decoded);
            }
        }
        Some(PathMatch {
            template: &node.template,
            path_params,
            methods: &node.methods,
        })
    }
}

fn schema_error(message: String) -> LabError {
    LabError::Schema(format!("PVE 9.1 (pve-api-schema.json): {message}"))
}

fn collect(node: &Value, out: &mut Vec<PathNode>) -> Result<(), LabError> {
    let template = node
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| schema_error("a path node has no `path`".into()))?;
    let segments = template
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(var) => Segment::Variable(var.to_string()),
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect();
    let mut methods = HashMap::new();
    if let Some(info) = node.get("info").and_then(Value::as_object) {
        for (method, entry) in info {
            methods.insert(
                method.clone(),
                MethodSchema {
                    parameters: entry.get("parameters").cloned().unwrap_or(Value::Null),
                },
            );
        }
    }
    out.push(PathNode {
        template: template.to_string(),
        segments,
        methods,
    });
    if let Some(children) = node.get("children").and_then(Value::as_array) {
        for child in children {
            collect(child, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_variables() {
        let schema = ApiSchema::load().unwrap();
        let m = schema
            .lookup("/nodes/pve1/qemu/100/status/current")
            .unwrap();
        assert_eq!(m.template, "/nodes/{node}/qemu/{vmid}/status/current");
        assert_eq!(m.path_params["vmid"], "100");
        assert!(m.method("GET").is_some());
        let m = schema
            .lookup("/nodes/pve1/tasks/UPID%3Apve1%3A/status")
            .unwrap();
        assert_eq!(m.path_params["upid"], "UPID:pve1:");
        assert!(schema.lookup("/nodes/pve1/nonsense/x/y/z/w").is_none());
        assert_eq!(schema.lookup("/").map(|m| m.template.to_string()), None);
    }
}
