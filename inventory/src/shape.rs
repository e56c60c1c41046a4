//! The shape check: the YAML tree against the inventory's own JSON Schema.
//!
//! serde stops at the first problem; this walk reports every unknown field,
//! missing field, wrong type and malformed value at once, each at its place.
//! The schema is generated from the model types, so the walk and the parser
//! agree on what is valid.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::source::{Path, Scalar, Span, YamlNode};
use crate::values::check_format;

/// What a scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarKind {
    Null,
    Bool,
    Integer,
    Float,
    String,
}

fn classify(scalar: &Scalar) -> ScalarKind {
    if !scalar.plain {
        return ScalarKind::String;
    }
    let text = scalar.value.as_str();
    match text {
        "" | "~" | "null" | "Null" | "NULL" => ScalarKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => ScalarKind::Bool,
        _ if is_integer(text) => ScalarKind::Integer,
        _ if is_float(text) => ScalarKind::Float,
        _ => ScalarKind::String,
    }
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = digits.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(octal) = digits.strip_prefix("0o") {
        return !octal.is_empty() && octal.chars().all(|c| ('0'..='7').contains(&c));
    }
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn is_float(text: &str) -> bool {
    matches!(
        text,
        ".inf" | ".Inf" | ".INF" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".NAN"
    ) || (text.chars().any(|c| c.is_ascii_digit()) && text.parse::<f64>().is_ok())
}

fn describe(node: &YamlNode) -> String {
    match node {
        YamlNode::Map(..) => "a mapping".to_owned(),
        YamlNode::Seq(..) => "a list".to_owned(),
        YamlNode::Scalar(scalar, _) if classify(scalar) == ScalarKind::Null => "nothing".to_owned(),
        YamlNode::Scalar(scalar, _) => format!("`{}`", scalar.value),
    }
}

fn type_name(name: &str) -> &'static str {
    match name {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "nothing",
        _ => "a value",
    }
}

fn node_has_type(node: &YamlNode, name: &str) -> bool {
    match (node, name) {
        (YamlNode::Map(..), "object") | (YamlNode::Seq(..), "array") => true,
        (YamlNode::Scalar(scalar, _), _) => {
            let kind = classify(scalar);
            match name {
                // A plain `8080` or `true` is also a valid string: the field's
                // type decides, as serde-saphyr does.
                "string" => kind != ScalarKind::Null,
                "integer" => kind == ScalarKind::Integer,
                "number" => matches!(kind, ScalarKind::Integer | ScalarKind::Float),
                "boolean" => kind == ScalarKind::Bool,
                "null" => kind == ScalarKind::Null,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The closest of `candidates` to `word`, when close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) struct ShapeCheck<'a> {
    root: &'a Value,
    pub diagnostics: Vec<Diagnostic>,
    /// Values of secret fields that are not references: masked in snippets.
    pub redactions: Vec<Span>,
}

impl<'a> ShapeCheck<'a> {
    pub fn new(root: &'a Value) -> Self {
        Self {
            root,
            diagnostics: Vec::new(),
            redactions: Vec::new(),
        }
    }

    pub fn run(mut self, tree: &YamlNode) -> Self {
        self.check(self.root, tree, &Path::root(), None);
        self
    }

    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        // schemars writes `#/definitions/Name` for draft-07.
        while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap_or_default();
            match self
                .root
                .get("definitions")
                .and_then(|definitions| definitions.get(name))
            {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn error(&mut self, span: Span, message: String) -> &mut Diagnostic {
        self.diagnostics.push(Diagnostic::new(span, message));
        let last = self.diagnostics.len() - 1;
        &mut self.diagnostics[last]
    }

    fn check(&mut self, schema: &'a Value, node: &YamlNode, path: &Path, key_span: Option<Span>) {
        let schema = self.resolve(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(part, node, path, key_span);
            }
        }
        if let Some(alternatives) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.check_alternatives(alternatives, node, path, key_span);
            return;
        }
        if !self.check_type(schema, node) {
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            self.check_enum(allowed, node, path);
        }
        if let Some(constant) = schema.get("const") {
            self.check_enum(std::slice::from_ref(constant), node, path);
        }
        match node {
            YamlNode::Map(..) => self.check_object(schema, node, path, key_span),
            YamlNode::Seq(items, _) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &path.index(index), None);
                    }
                }
            }
            YamlNode::Scalar(scalar, span) => self.check_scalar(schema, scalar, *span),
        }
    }

    fn check_type(&mut self, schema: &Value, node: &YamlNode) -> bool {
        let allowed: Vec<&str> = match schema.get("type") {
            Some(Value::String(name)) => vec![name.as_str()],
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
            _ => return true,
        };
        if allowed.iter().any(|name| node_has_type(node, name)) {
            return true;
        }
        let expected: Vec<&str> = allowed
            .iter()
            .filter(|name| **name != "null")
            .map(|name| type_name(name))
            .collect();
        let message = format!(
            "expected {}, found {}",
            expected.join(" or "),
            describe(node)
        );
        let span = node.span();
        self.error(span, message);
        false
    }

    fn check_alternatives(
        &mut self,
        alternatives: &'a [Value],
        node: &YamlNode,
        path: &Path,
        key_span: Option<Span>,
    ) {
        let is_null =
            matches!(node, YamlNode::Scalar(scalar, _) if classify(scalar) == ScalarKind::Null);
        let (nulls, others): (Vec<&Value>, Vec<&Value>) =
            alternatives.iter().partition(|alternative| {
                alternative.get("type").and_then(Value::as_str) == Some("null")
            });
        if is_null && !nulls.is_empty() {
            return;
        }
        if let [only] = others.as_slice() {
            self.check(only, node, path, key_span);
            return;
        }
        let mut best: Option<ShapeCheck<'a>> = None;
        for alternative in &others {
            let attempt = ShapeCheck::new(self.root);
            let mut attempt = attempt;
            attempt.check(alternative, node, path, key_span);
            if attempt.diagnostics.is_empty() {
                self.redactions.extend(attempt.redactions);
                return;
            }
            if best
                .as_ref()
                .is_none_or(|best| attempt.diagnostics.len() < best.diagnostics.len())
            {
                best = Some(attempt);
            }
        }
        let all_constant = others.iter().all(|alternative| {
            alternative.get("const").is_some() || alternative.get("enum").is_some()
        });
        let constants: Vec<&str> = others
            .iter()
            .flat_map(|alternative| {
                let single = alternative.get("const").into_iter();
                let listed = alternative
                    .get("enum")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten();
                single.chain(listed).filter_map(Value::as_str)
            })
            .collect();
        if all_constant {
            self.report_unknown_value(node, path, &constants);
        } else if let Some(best) = best {
            self.diagnostics.extend(best.diagnostics);
            self.redactions.extend(best.redactions);
        }
    }

    fn check_enum(&mut self, allowed: &[Value], node: &YamlNode, path: &Path) {
        let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let YamlNode::Scalar(scalar, _) = node else {
            return;
        };
        if !allowed.contains(&scalar.value.as_str()) {
            self.report_unknown_value(node, path, &allowed);
        }
    }

    fn report_unknown_value(&mut self, node: &YamlNode, path: &Path, allowed: &[&str]) {
        let field = path.last_key().unwrap_or("value");
        let shown = describe(node);
        let suggestion = match node {
            YamlNode::Scalar(scalar, _) => did_you_mean(&scalar.value, allowed.iter().copied()),
            _ => None,
        };
        let message = match suggestion {
            Some(suggestion) => format!("invalid `{field}` {shown}, did you mean `{suggestion}`?"),
            None => format!(
                "invalid `{field}` {shown}, expected one of {}",
                backticked(allowed)
            ),
        };
        self.error(node.span(), message);
    }

    fn check_scalar(&mut self, schema: &Value, scalar: &Scalar, span: Span) {
        let text = scalar.value.as_str();
        if let Some(format) = schema.get("x-kiln-format").and_then(Value::as_str) {
            if let Some(Err(message)) = check_format(format, text) {
                if format.ends_with("secret-ref") {
                    self.redactions.push(span);
                }
                self.error(span, message);
            }
            return;
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            let valid = match format {
                "ipv4" => text.parse::<Ipv4Addr>().is_ok(),
                "ipv6" => text.parse::<Ipv6Addr>().is_ok(),
                "ip" => text.parse::<IpAddr>().is_ok(),
                _ => true,
            };
            if !valid {
                let kind = match format {
                    "ipv4" => "IPv4 address",
                    "ipv6" => "IPv6 address",
                    _ => "IP address",
                };
                self.error(span, format!("invalid {kind} `{text}`"));
                return;
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let matches = regex::Regex::new(pattern).map(|regex| regex.is_match(text));
            if matches == Ok(false) {
                self.error(
                    span,
                    format!("invalid value `{text}`: it must match `{pattern}`"),
                );
                return;
            }
        }
        if let Ok(number) = text.parse::<f64>() {
            let minimum = schema.get("minimum").and_then(Value::as_f64);
            let maximum = schema.get("maximum").and_then(Value::as_f64);
            if let Some(minimum) = minimum.filter(|minimum| number < *minimum) {
                self.error(
                    span,
                    format!("`{text}` is too small: the minimum is {minimum}"),
                );
            } else if let Some(maximum) = maximum.filter(|maximum| number > *maximum) {
                self.error(
                    span,
                    format!("`{text}` is too large: the maximum is {maximum}"),
                );
            }
        }
    }

    fn check_object(
        &mut self,
        schema: &'a Value,
        node: &YamlNode,
        path: &Path,
        key_span: Option<Span>,
    ) {
        let YamlNode::Map(entries, span) = node else {
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for entry in entries {
            let entry_path = path.key(entry.key.clone());
            if let Some(property) = properties.and_then(|properties| properties.get(&entry.key)) {
                self.check(property, &entry.value, &entry_path, Some(entry.key_span));
                continue;
            }
            if let Some(patterns) = schema.get("patternProperties").and_then(Value::as_object) {
                self.check_named_entry(patterns, entry, &entry_path);
                continue;
            }
            match additional {
                Some(value_schema @ Value::Object(_)) => {
                    self.check(
                        value_schema,
                        &entry.value,
                        &entry_path,
                        Some(entry.key_span),
                    );
                }
                _ if properties.is_some() => {
                    let known: Vec<&str> = properties
                        .map(|properties| properties.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let message = match did_you_mean(&entry.key, known.iter().copied()) {
                        Some(suggestion) => format!(
                            "unknown field `{}`, did you mean `{suggestion}`?",
                            entry.key
                        ),
                        None => format!(
                            "unknown field `{}`, expected one of {}",
                            entry.key,
                            backticked(&known)
                        ),
                    };
                    self.error(entry.key_span, message);
                }
                _ => {}
            }
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !entries.iter().any(|entry| entry.key == required) {
                let place = if path.segments().is_empty() {
                    String::new()
                } else {
                    format!(" in `{path}`")
                };
                self.error(
                    key_span.unwrap_or(*span),
                    format!("missing field `{required}`{place}"),
                );
            }
        }
    }

    /// An entry of a map keyed by names (`images`, `templates`, `profiles`,
    /// template `vmids`): the key must be a label, the value its schema.
    fn check_named_entry(
        &mut self,
        patterns: &'a serde_json::Map<String, Value>,
        entry: &crate::source::Entry,
        path: &Path,
    ) {
        let matching = patterns.iter().find(|(pattern, _)| {
            regex::Regex::new(pattern).is_ok_and(|regex| regex.is_match(&entry.key))
        });
        match matching {
            Some((_, value_schema)) => {
                self.check(value_schema, &entry.value, path, Some(entry.key_span))
            }
            None => {
                let message = match check_format("label", &entry.key) {
                    Some(Err(message)) => message,
                    _ => format!("invalid name `{}`", entry.key),
                };
                self.error(entry.key_span, message);
            }
        }
    }
}
