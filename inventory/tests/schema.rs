//! The JSON Schema editors use accepts what kiln accepts, rejects unknown
//! fields, and is the one committed at docs/kiln.schema.json.

use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::read_dir(dir)
        .expect("examples")
        .map(|entry| entry.expect("entry").path())
        .collect()
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_saphyr::from_str(&text).expect("YAML as JSON value")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft7::new(kiln_inventory::json_schema()).expect("the schema is valid draft-07")
}

#[test]
fn the_schema_is_draft_07() {
    assert_eq!(
        kiln_inventory::json_schema()["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
}

#[test]
fn the_schema_accepts_every_example() {
    let validator = validator();
    for path in examples() {
        let instance = as_json(&path);
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|error| error.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_schema_rejects_an_unknown_field() {
    let mut instance =
        as_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.yaml"));
    instance["nodes"][0]["cpus"] = serde_json::json!(2);
    let errors: Vec<String> = validator()
        .iter_errors(&instance)
        .map(|error| error.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("cpus"), "{errors:#?}");
}

#[test]
fn the_schema_rejects_a_literal_secret() {
    let mut instance =
        as_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal.yaml"));
    instance["proxmox"]["auth"]["token"] = serde_json::json!("root@pam!kiln=0b5e-secret");
    assert!(!validator().is_valid(&instance));
}

#[test]
fn the_committed_schema_is_current() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kiln.schema.json");
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(kiln_inventory::json_schema()).expect("schema")
    );
    if std::env::var_os("KILN_UPDATE_SCHEMA").is_some() {
        std::fs::write(&committed, &generated).expect("write docs/kiln.schema.json");
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/kiln.schema.json is out of date: run `KILN_UPDATE_SCHEMA=1 cargo test -p kiln-inventory --test schema`"
    );
}

/// Every field path the schema allows, as docs/inventory.md writes them:
/// `nodes[].ip`, `images.<name>.url`.
fn field_paths(
    schema: &serde_json::Value,
    node: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let node = resolve(schema, node);
    for key in ["anyOf", "oneOf", "allOf"] {
        for alternative in node
            .get(key)
            .and_then(|value| value.as_array())
            .into_iter()
            .flatten()
        {
            field_paths(schema, alternative, prefix, out);
        }
    }
    if let Some(items) = node.get("items") {
        field_paths(schema, items, &format!("{prefix}[]"), out);
    }
    if let Some(patterns) = node
        .get("patternProperties")
        .and_then(|value| value.as_object())
    {
        for value in patterns.values() {
            field_paths(schema, value, &format!("{prefix}.<name>"), out);
        }
    }
    for (name, value) in node
        .get("properties")
        .and_then(|value| value.as_object())
        .into_iter()
        .flatten()
    {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        out.push(path.clone());
        field_paths(schema, value, &path, out);
    }
}

fn resolve<'a>(
    schema: &'a serde_json::Value,
    node: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match node.get("$ref").and_then(|value| value.as_str()) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &schema["definitions"][name]
        }
        None => node,
    }
}

#[test]
fn the_inventory_reference_documents_every_field() {
    let schema = kiln_inventory::json_schema();
    let mut paths = Vec::new();
    field_paths(schema, schema, "", &mut paths);
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/inventory.md"))
            .expect("docs/inventory.md");
    let section_only = [
        "agent",
        "cluster",
        "defaults",
        "gitops",
        "images",
        "network",
        "nodes",
        "profiles",
        "proxmox",
        "secrets",
        "ssh",
        "storage",
        "templates",
    ];
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| !section_only.contains(&path.as_str()))
        .filter(|path| !doc.contains(&format!("`{path}`")))
        .filter(|path| {
            // A structured field documented through its parts (`proxmox.tls.fingerprint`)
            // need not have a row of its own.
            !doc.contains(&format!("`{path}."))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/inventory.md does not document: {missing:#?}"
    );
}
