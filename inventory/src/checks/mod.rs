//! Rules across fields: uniqueness, addressing, topology, references,
//! profiles and storage. Each rule reports every violation it finds, at its place.

mod addressing;
mod identity;
mod profiles;
mod references;
mod storage;
mod topology;

use crate::diagnostic::Diagnostic;
use crate::model::Inventory;
use crate::source::{Path, Span, YamlNode};

/// Collects findings by path and places them in the file.
pub(crate) struct Findings<'a> {
    tree: &'a YamlNode,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Findings<'a> {
    fn new(tree: &'a YamlNode) -> Self {
        Self {
            tree,
            diagnostics: Vec::new(),
        }
    }

    /// Where to point for `path`: a scalar's value, a mapping's or list's
    /// key, or the nearest thing on the way when the path is not written.
    pub fn span(&self, path: &Path) -> Span {
        self.tree.locate(path).0
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.tree.value_span(path).is_some()
    }

    /// Records a finding; the same message at the same place (a default
    /// that several nodes inherit) is reported once.
    pub fn report(&mut self, path: &Path, message: impl Into<String>) -> &mut Diagnostic {
        let diagnostic = Diagnostic::new(self.span(path), message);
        let position =
            match self.diagnostics.iter().position(|known| {
                known.span == diagnostic.span && known.message == diagnostic.message
            }) {
                Some(position) => position,
                None => {
                    self.diagnostics.push(diagnostic);
                    self.diagnostics.len() - 1
                }
            };
        &mut self.diagnostics[position]
    }

    /// Reports at the first of `paths` that the file spells out (a value
    /// may come from the node itself or from `defaults`).
    pub fn report_first(&mut self, paths: &[Path], message: impl Into<String>) -> &mut Diagnostic {
        let path = paths
            .iter()
            .find(|path| self.exists(path))
            .or_else(|| paths.first())
            .cloned()
            .unwrap_or_default();
        self.report(&path, message)
    }
}

pub(crate) fn run(inventory: &Inventory, tree: &YamlNode) -> Vec<Diagnostic> {
    let mut findings = Findings::new(tree);
    identity::check(inventory, &mut findings);
    addressing::check(inventory, &mut findings);
    topology::check(inventory, &mut findings);
    references::check(inventory, &mut findings);
    profiles::check(inventory, &mut findings);
    storage::check(inventory, &mut findings);
    findings.diagnostics
}
