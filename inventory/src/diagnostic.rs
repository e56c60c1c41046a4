//! Errors that point into the inventory file: `FILE:LINE:COL: message`,
//! then the line with a caret under the culprit.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

use crate::source::Span;

/// One problem at one place in the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

/// A diagnostic placed in its file, for output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one inventory file. Its `Display` is one
/// `FILE:LINE:COL: message` line per problem; [`InventoryError::render`]
/// adds the snippets.
#[derive(Debug, Clone)]
pub struct InventoryError {
    file: String,
    /// The source with secret values masked, so snippets never show them.
    source: String,
    diagnostics: Vec<Diagnostic>,
}

impl InventoryError {
    pub(crate) fn new(
        file: &str,
        source: &str,
        redactions: &[Span],
        mut diagnostics: Vec<Diagnostic>,
    ) -> Self {
        diagnostics.sort_by_key(|diagnostic| diagnostic.span.start);
        Self {
            file: file.to_owned(),
            source: redact(source, redactions),
            diagnostics,
        }
    }

    /// An error that is not about a place in the file (it cannot be read).
    pub(crate) fn unreadable(file: &str, message: String) -> Self {
        Self {
            file: file.to_owned(),
            source: String::new(),
            diagnostics: vec![Diagnostic::new(Span::default(), message)],
        }
    }

    pub fn located(&self) -> Vec<Located> {
        self.diagnostics
            .iter()
            .map(|diagnostic| {
                let (line, column) = line_column(&self.source, diagnostic.span.start);
                Located {
                    file: self.file.clone(),
                    line,
                    column,
                    message: diagnostic.message.clone(),
                    help: diagnostic.help.clone(),
                }
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.diagnostics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Every problem with a snippet and caret, for a terminal.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_wrap_lines(false)
            .with_links(false)
            .with_context_lines(1);
        let mut out = String::new();
        for (diagnostic, located) in self.diagnostics.iter().zip(self.located()) {
            out.push_str(&located.to_string());
            out.push('\n');
            if self.source.is_empty() {
                continue;
            }
            let report = SnippetReport {
                source: NamedSource::new(&self.file, self.source.clone()),
                diagnostic,
            };
            let mut rendered = String::new();
            if handler.render_report(&mut rendered, &report).is_ok() {
                // miette opens with the message, which the header line already says.
                let body = rendered.split_once('\n').map_or("", |(_, body)| body);
                out.push_str(body.trim_end_matches('\n'));
                out.push('\n');
            }
        }
        out
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let located = self.located();
        for (position, problem) in located.iter().enumerate() {
            if position > 0 {
                writeln!(f)?;
            }
            problem.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for InventoryError {}

struct SnippetReport<'a> {
    source: NamedSource<String>,
    diagnostic: &'a Diagnostic,
}

impl fmt::Debug for SnippetReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for SnippetReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for SnippetReport<'_> {}

impl miette::Diagnostic for SnippetReport<'_> {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = LabeledSpan::new_primary_with_span(
            None,
            (self.diagnostic.span.start, self.diagnostic.span.len()),
        );
        let related = self.diagnostic.related.iter().map(|(span, label)| {
            LabeledSpan::new_with_span(Some(label.clone()), (span.start, span.len()))
        });
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before
        .get(line_start..)
        .map_or(0, |text| text.chars().count())
        + 1;
    (line, column)
}

/// Masks secret values with `*`, keeping every other byte where it was.
fn redact(source: &str, redactions: &[Span]) -> String {
    let mut masked = source.to_owned();
    for span in redactions {
        if let Some(text) = source.get(span.start..span.end) {
            // One `*` per byte keeps every later span pointing where it did.
            let stars: String = text
                .chars()
                .map(|c| {
                    if c == '\n' {
                        "\n".to_owned()
                    } else {
                        "*".repeat(c.len_utf8())
                    }
                })
                .collect();
            masked.replace_range(span.start..span.end, &stars);
        }
    }
    masked
}
