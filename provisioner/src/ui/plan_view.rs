//! A plan for people (a diff) and for programs (stable JSON, docs/plan.md).

use std::fmt::Write;

use kiln::plan::{Action, OrphanAction, Plan};
use serde_json::json;

/// The JSON form: the plan plus counts. Its shape is documented; add
/// fields, never rename or remove them.
pub fn json(plan: &Plan) -> serde_json::Value {
    let count = |action: Action| {
        plan.nodes
            .iter()
            .filter(|node| node.action == action)
            .count()
    };
    json!({
        "format_version": 1,
        "plan": plan,
        "summary": {
            "create": count(Action::Create),
            "update": count(Action::Update),
            "replace": count(Action::Replace),
            "unchanged": count(Action::Nothing),
            "destroy": count(Action::Destroy)
                + plan.orphans.iter().filter(|orphan| orphan.action == OrphanAction::Destroy).count(),
            "changes_pending": plan.has_changes(),
            "destructive": plan.is_destructive(),
            "storage_changes": plan.storage.as_ref().map_or(0, |storage| storage.changes.len()),
        }
    })
}

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan for cluster `{}`:", plan.cluster);
    let width = plan
        .nodes
        .iter()
        .map(|node| node.node.len())
        .max()
        .unwrap_or(0);
    for node in &plan.nodes {
        let vm = node
            .vmid
            .map(|vmid| format!("VM {vmid} on {}", node.pve_node))
            .unwrap_or_else(|| node.pve_node.clone());
        let (symbol, what) = match node.action {
            Action::Create => ("+", format!("create on {vm}")),
            Action::Update => ("~", format!("update in place ({vm})")),
            Action::Replace => (
                "-/+",
                format!("replace ({vm}) — DESTRUCTIVE: the VM is destroyed and made again"),
            ),
            Action::Destroy => ("-", format!("destroy ({vm}) — DESTRUCTIVE")),
            Action::Nothing => ("=", format!("no changes ({vm})")),
        };
        let _ = writeln!(out, "  {symbol:>3} {:<width$}  {what}", node.node);
        for change in &node.changes {
            let old = change.old.as_deref().unwrap_or("—");
            let new = change.new.as_deref().unwrap_or("—");
            let forces = if change.destructive {
                "  (forces replacement)"
            } else {
                ""
            };
            if node.action == Action::Create {
                let _ = writeln!(out, "        {}: {new}", change.field);
            } else {
                let _ = writeln!(out, "        {}: {old} → {new}{forces}", change.field);
            }
        }
    }
    for orphan in &plan.orphans {
        let what = match orphan.action {
            OrphanAction::Destroy => "destroy — DESTRUCTIVE: no longer in the inventory",
            OrphanAction::Keep => "no longer in the inventory; kept (`--prune` destroys it)",
        };
        let symbol = if orphan.action == OrphanAction::Destroy {
            "-"
        } else {
            "?"
        };
        let _ = writeln!(
            out,
            "  {symbol:>3} {}  VM {} on {}: {what}",
            orphan.node, orphan.vmid, orphan.pve_node
        );
    }
    if let Some(storage) = &plan.storage {
        if storage.changes.is_empty() {
            let _ = writeln!(out, "    = TrueNAS  no changes");
        } else {
            let _ = writeln!(out, "    ~ TrueNAS");
            for change in &storage.changes {
                let _ = writeln!(out, "        {change}");
            }
        }
    }
    let summary = json(plan)["summary"].clone();
    let _ = writeln!(
        out,
        "{} to create, {} to update, {} to replace, {} to destroy, {} unchanged.",
        summary["create"],
        summary["update"],
        summary["replace"],
        summary["destroy"],
        summary["unchanged"]
    );
    out
}
