use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle};

use super::span::Span;
use super::{Path, Segment};
use crate::diagnostic::Diagnostic;

/// A scalar as written, before any typing.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub value: String,
    /// Quoted and block scalars are always strings; plain ones may be
    /// numbers, booleans or null (YAML 1.2 core schema).
    pub plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: YamlNode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YamlNode {
    Scalar(Scalar, Span),
    Map(Vec<Entry>, Span),
    Seq(Vec<YamlNode>, Span),
}

impl YamlNode {
    pub fn span(&self) -> Span {
        match self {
            Self::Scalar(_, span) | Self::Map(_, span) | Self::Seq(_, span) => *span,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        match self {
            Self::Map(entries, _) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    /// The node at `path`, or the deepest one on the way there, and whether
    /// the whole path was found. Errors about a missing field point at the
    /// mapping that lacks it.
    pub fn locate(&self, path: &Path) -> (Span, bool) {
        let mut node = self;
        let mut span = self.span();
        for segment in path.segments() {
            let next = match (segment, node) {
                (Segment::Key(key), _) => node.get(key).map(|entry| {
                    span = entry.key_span;
                    &entry.value
                }),
                (Segment::Index(index), Self::Seq(items, _)) => items.get(*index),
                (Segment::Index(_), _) => None,
            };
            match next {
                Some(child) => {
                    node = child;
                    if !matches!(child, Self::Map(..) | Self::Seq(..))
                        || matches!(segment, Segment::Index(_))
                    {
                        span = child.span();
                    }
                }
                None => return (span, false),
            }
        }
        (span, true)
    }

    /// The value span at `path` when it exists.
    pub fn value_span(&self, path: &Path) -> Option<Span> {
        let mut node = self;
        for segment in path.segments() {
            node = match (segment, node) {
                (Segment::Key(key), _) => &node.get(key)?.value,
                (Segment::Index(index), Self::Seq(items, _)) => items.get(*index)?,
                (Segment::Index(_), _) => return None,
            };
        }
        Some(node.span())
    }
}

/// Parses YAML into a tree with spans. A syntax error ends parsing (YAML
/// cannot be read past it); duplicate keys are collected and parsing goes on.
pub fn parse_tree(source: &str) -> Result<(YamlNode, Vec<Diagnostic>), Diagnostic> {
    let offsets = ByteOffsets::new(source);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        problems: Vec::new(),
    };
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|error| {
            let at = offsets.of(error.marker());
            Diagnostic::new(
                Span { start: at, end: at },
                format!("YAML syntax error: {}", error.info()),
            )
        })?;
        let span = Span {
            start: offsets.of(&span.start),
            end: offsets.of(&span.end),
        };
        builder.event(event, span)?;
    }
    let root = builder.root.ok_or_else(|| {
        Diagnostic::new(
            Span::default(),
            "the inventory is empty: expected a mapping with `cluster`, `network` and `nodes`",
        )
    })?;
    Ok((root, builder.problems))
}

/// The parser counts characters; snippets and serde-saphyr count bytes.
struct ByteOffsets(Vec<usize>);

impl ByteOffsets {
    fn new(source: &str) -> Self {
        let mut offsets: Vec<usize> = source.char_indices().map(|(byte, _)| byte).collect();
        offsets.push(source.len());
        Self(offsets)
    }

    fn of(&self, marker: &Marker) -> usize {
        marker.byte_offset().unwrap_or_else(|| {
            self.0
                .get(marker.index())
                .copied()
                .unwrap_or_else(|| self.0.last().copied().unwrap_or(0))
        })
    }
}

enum Frame {
    Map {
        entries: Vec<Entry>,
        span: Span,
        pending_key: Option<(String, Span)>,
        merged: Vec<Entry>,
        anchor: usize,
    },
    Seq {
        items: Vec<YamlNode>,
        span: Span,
        anchor: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, YamlNode>,
    root: Option<YamlNode>,
    problems: Vec<Diagnostic>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        match event {
            Event::Scalar(value, style, anchor, _) => {
                let node = YamlNode::Scalar(
                    Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    span,
                );
                self.remember(anchor, &node);
                self.push(node)
            }
            Event::MappingStart(_, anchor, _) => {
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    span,
                    pending_key: None,
                    merged: Vec::new(),
                    anchor,
                });
                Ok(())
            }
            Event::SequenceStart(_, anchor, _) => {
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    span,
                    anchor,
                });
                Ok(())
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Map {
                        mut entries,
                        span: start,
                        merged,
                        anchor,
                        ..
                    }) => {
                        for entry in merged {
                            if !entries.iter().any(|existing| existing.key == entry.key) {
                                entries.push(entry);
                            }
                        }
                        (
                            YamlNode::Map(
                                entries,
                                Span {
                                    start: start.start,
                                    end: span.end,
                                },
                            ),
                            anchor,
                        )
                    }
                    Some(Frame::Seq {
                        items,
                        span: start,
                        anchor,
                    }) => (
                        YamlNode::Seq(
                            items,
                            Span {
                                start: start.start,
                                end: span.end,
                            },
                        ),
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.remember(anchor, &node);
                self.push(node)
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(node) => self.push(node),
                None => Err(Diagnostic::new(
                    span,
                    "YAML alias refers to an unknown anchor",
                )),
            },
            _ => Ok(()),
        }
    }

    fn remember(&mut self, anchor: usize, node: &YamlNode) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn push(&mut self, node: YamlNode) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(Diagnostic::new(
                        node.span(),
                        "the inventory must be one YAML document; found a second one",
                    ));
                }
                self.root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                merged,
                ..
            }) => match pending_key.take() {
                None => match node {
                    YamlNode::Scalar(scalar, span) => *pending_key = Some((scalar.value, span)),
                    other => {
                        return Err(Diagnostic::new(
                            other.span(),
                            "mapping keys must be plain names, not lists or mappings",
                        ));
                    }
                },
                Some((key, key_span)) if key == "<<" => {
                    merge(merged, node, key_span, &mut self.problems);
                }
                Some((key, key_span)) => {
                    if let Some(first) = entries.iter().find(|entry| entry.key == key) {
                        self.problems.push(
                            Diagnostic::new(key_span, format!("duplicate key `{key}`"))
                                .with_help(format!(
                                    "`{key}` is already set in this mapping; remove one of them"
                                ))
                                .with_related(first.key_span, "first set here"),
                        );
                    } else {
                        entries.push(Entry {
                            key,
                            key_span,
                            value: node,
                        });
                    }
                }
            },
        }
        Ok(())
    }
}

/// YAML merge keys (`<<: *defaults`): the merged mappings' entries fill in
/// the keys the mapping does not set itself, wherever the `<<` stands.
fn merge(merged: &mut Vec<Entry>, node: YamlNode, key_span: Span, problems: &mut Vec<Diagnostic>) {
    let sources = match node {
        YamlNode::Map(merged, _) => vec![merged],
        YamlNode::Seq(items, _) => items
            .into_iter()
            .filter_map(|item| match item {
                YamlNode::Map(merged, _) => Some(merged),
                _ => None,
            })
            .collect(),
        YamlNode::Scalar(..) => {
            problems.push(Diagnostic::new(
                key_span,
                "a merge key `<<` needs a mapping or a list of mappings",
            ));
            return;
        }
    };
    for source in sources {
        for entry in source {
            if !merged.iter().any(|existing| existing.key == entry.key) {
                merged.push(entry);
            }
        }
    }
}
