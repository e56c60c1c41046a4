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
