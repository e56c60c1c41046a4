//! kiln-inventory: the one YAML file that describes a cluster.
//!
//! Reading an inventory runs four passes, each reporting *every* problem it
//! finds at its `FILE:LINE:COL`:
//!
//! 1. [`source`]: YAML into a tree that remembers spans (syntax, duplicate keys);
//! 2. [`shape`]: that tree against the JSON Schema generated from [`model`]
//!    (unknown fields with "did you mean", types, malformed values);
//! 3. serde-saphyr: the tree's text into the typed [`model::Inventory`];
//! 4. [`checks`]: rules across fields (uniqueness, addressing, placement,
//!    references, profiles).
//!
//! Secrets are never values here, only references ([`values::SecretRef`]);
//! a literal secret is refused, and masked in every snippet.

mod checks;
mod diagnostic;
mod effective;
pub mod model;
mod overlay;
mod resolve;
mod secret_uses;
mod shape;
pub mod source;
pub mod values;

use std::path::Path as FsPath;
use std::sync::OnceLock;

pub use diagnostic::{Diagnostic, InventoryError, Located};
pub use effective::{DEFAULT_CORES, DEFAULT_MEMORY, EffectiveDisk, VmSpec};
pub use model::Inventory;
pub use secret_uses::SecretUse;

/// The inventory's JSON Schema (draft-07), generated from the model types.
pub fn json_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = schemars::generate::SchemaSettings::draft07().into_generator();
        generator.into_root_schema_for::<Inventory>().to_value()
    })
}

/// Reads and validates an inventory file.
pub fn load(path: &FsPath) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        InventoryError::unreadable(&file, format!("cannot read the inventory: {error}"))
    })?;
    parse(&file, &text)
}

/// Validates inventory text; `file` names it in messages.
pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let (tree, mut problems) = match source::parse_tree(text) {
        Ok(parsed) => parsed,
        Err(syntax) => return Err(InventoryError::new(file, text, &[], vec![syntax])),
    };
    let shape = shape::ShapeCheck::new(json_schema()).run(&tree);
    problems.extend(shape.diagnostics);
    if !problems.is_empty() {
        return Err(InventoryError::new(file, text, &shape.redactions, problems));
    }
    let inventory: Inventory = serde_saphyr::from_str(text).map_err(|error| {
        let span = error
            .location()
            .and_then(|location| location.span().byte_offset())
            .and_then(|offset| usize::try_from(offset).ok())
            .map(|start| source::Span { start, end: start })
            .unwrap_or_default();
        let message = error.without_snippet().to_string();
        InventoryError::new(file, text, &[], vec![Diagnostic::new(span, message)])
    })?;
    let problems = checks::run(&inventory, &tree);
    if problems.is_empty() {
        Ok(inventory)
    } else {
        Err(InventoryError::new(file, text, &[], problems))
    }
}
