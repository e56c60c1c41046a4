//! `inventory/examples/lab.yaml` for the `sim` lab. The sim has no guests to
//! log in to, so its inventories leave out `ssh` and `agent`: each node's
//! pipeline then ends when the guest agent reports its address (the issue's
//! rule for inventories without them). The real-guest tests keep both.

#![allow(dead_code, clippy::expect_used)] // not every test file uses every helper

use std::path::Path;

pub mod cli;

/// lab.yaml without its top-level `ssh:` and `agent:` sections.
pub fn lab_yaml() -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventory/examples/lab.yaml"),
    )
    .expect("lab.yaml");
    without_sections(&text, &["ssh", "agent"])
}

fn without_sections(text: &str, sections: &[&str]) -> String {
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level = !line.starts_with([' ', '#']) && !line.is_empty();
        if top_level {
            skipping = sections
                .iter()
                .any(|section| line.starts_with(&format!("{section}:")));
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    assert!(
        sections
            .iter()
            .all(|section| !kept.contains(&format!("\n{section}:"))),
        "lab.yaml changed shape"
    );
    kept
}
