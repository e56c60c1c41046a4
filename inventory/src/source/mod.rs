//! The inventory's YAML as written: a tree of nodes that remember where
//! they stand in the file, so every error can name its line and column.

mod path;
mod span;
mod tree;

pub use path::{Path, PathStep, Segment};
pub use span::Span;
pub use tree::{Entry, Scalar, YamlNode, parse_tree};
