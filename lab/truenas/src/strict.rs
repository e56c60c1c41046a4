//! Params checked as pydantic checks the middleware's models: `strict=True` (no `"1"` → 1,
//! no `1.0` → 1, no `1` → `true`), `extra="forbid"`, and pydantic's messages at pydantic's
//! locations (`groups.0.portal`). It walks the same JSON Schema the `jsonschema` crate
//! validates against (`schema.rs`), covering the keywords the method schemas use; the crate
//! stays the final word for anything this walk does not express.

use serde_json::{Map, Value};

/// One failure: the location below the argument (field names and list indexes) and
/// pydantic's message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StrictError {
    pub loc: Vec<String>,
    pub message: String,
}

/// Checks `value` against `schema`; failures are appended to `errors`.
pub(crate) fn check(
    schema: &Value,
    value: &Value,
    loc: &mut Vec<String>,
    errors: &mut Vec<StrictError>,
) {
    let Some(schema) = schema.as_object() else {
        // `true`/`false` schemas: `items: false` is handled by the caller (argument count).
        return;
    };
    if let Some(Value::Array(branches)) = schema.get("anyOf") {
        return check_union(branches, value, loc, errors);
    }
    if let (Some(Value::Array(branches)), Some(discriminator)) =
        (schema.get("oneOf"), schema.get("discriminator"))
    {
        return check_tagged_union(branches, discriminator, value, loc, errors);
    }
    if let Some(expected) = schema.get("const") {
        if !strict_eq(expected, value) {
            push(
                errors,
                loc,
                format!("Input should be {}", python_repr(expected)),
            );
        }
        return;
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.iter().any(|o| strict_eq(o, value)) {
            push(errors, loc, format!("Input should be {}", one_of(options)));
        }
        return;
    }
    if let Some(Value::String(kind)) = schema.get("type")
        && !type_matches(kind, value)
    {
        push(errors, loc, type_message(kind, schema));
        return;
    }
    match value {
        Value::String(s) => check_string(schema, s, loc, errors),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or_default(), loc, errors),
        Value::Array(items) => check_array(schema, items, loc, errors),
        Value::Object(map) => check_object(schema, map, loc, errors),
        _ => {}
    }
}

fn push(errors: &mut Vec<StrictError>, loc: &[String], message: String) {
    errors.push(StrictError {
        loc: loc.to_vec(),
        message,
    });
}

/// `int | None`, `str | list[str]`, `FilesystemModel | VolumeModel` (pydantic's smart
/// union). A nullable field reports its one real branch's errors, as pydantic does for
/// `Optional`. A union of models reports every model's errors under the model's name
/// (`data.PoolDatasetCreateFilesystem.type`, `data.PoolDatasetCreateVolume.volsize`) —
/// measured with pydantic 2.9.2, and the middleware's `accept.py` passes such locations
/// through. Other unions get one message naming every accepted kind, as `accept.py` joins
/// the members' messages with " or ".
fn check_union(
    branches: &[Value],
    value: &Value,
    loc: &mut Vec<String>,
    errors: &mut Vec<StrictError>,
) {
    let real: Vec<&Value> = branches
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        .collect();
    if value.is_null() && real.len() < branches.len() {
        return;
    }
    let mut attempts: Vec<Vec<StrictError>> = Vec::new();
    for branch in &real {
        let mut branch_errors = Vec::new();
        check(branch, value, loc, &mut branch_errors);
        if branch_errors.is_empty() {
            return;
        }
        attempts.push(branch_errors);
    }
    if attempts.len() == 1 {
        errors.extend(attempts.remove(0));
        return;
    }
    let models: Vec<&str> = real
        .iter()
        .filter(|b| b.get("properties").is_some())
        .filter_map(|b| b.get("title").and_then(Value::as_str))
        .collect();
    if models.len() == real.len() {
        for (model, branch_errors) in models.iter().zip(attempts) {
            for mut error in branch_errors {
                error.loc.insert(loc.len(), (*model).to_string());
                errors.push(error);
            }
        }
        return;
    }
    let all_here = attempts.iter().all(|a| a.iter().all(|e| e.loc == *loc));
    if all_here {
        let messages: Vec<String> = attempts
            .iter()
            .flat_map(|a| a.iter().map(|e| e.message.clone()))
            .collect();
        push(errors, loc, messages.join(" or "));
    } else if let Some(fewest) = attempts.into_iter().min_by_key(Vec::len) {
        errors.extend(fewest);
    }
}

/// A discriminated union (`auth.login_ex`'s `mechanism`): pydantic puts the tag in the
/// location (`login_data.API_KEY_PLAIN.api_key`).
fn check_tagged_union(
    branches: &[Value],
    discriminator: &Value,
    value: &Value,
    loc: &mut Vec<String>,
    errors: &mut Vec<StrictError>,
) {
    let Some(field) = discriminator.get("propertyName").and_then(Value::as_str) else {
        return;
    };
    let Some(map) = value.as_object() else {
        push(
            errors,
            loc,
            "Input should be a valid dictionary or object to extract fields from".into(),
        );
        return;
    };
    let tags: Vec<&Value> = branches
        .iter()
        .filter_map(|b| b.get("properties")?.get(field)?.get("const"))
        .collect();
    let Some(tag) = map.get(field) else {
        // The middleware rewrites `union_tag_not_found` as the missing field.
        loc.push(field.to_string());
        push(errors, loc, "Field required".into());
        loc.pop();
        return;
    };
    let branch = branches.iter().find(|b| {
        b.get("properties")
            .and_then(|p| p.get(field))
            .and_then(|f| f.get("const"))
            == Some(tag)
    });
    match branch {
        Some(branch) => {
            loc.push(tag.as_str().map_or_else(|| tag.to_string(), str::to_string));
            check(branch, value, loc, errors);
            loc.pop();
        }
        None => {
            let expected: Vec<String> = tags.iter().map(|t| python_repr(t)).collect();
            push(
                errors,
                loc,
                format!(
                    "Input tag {} found using '{field}' does not match any of the expected tags: {}",
                    python_repr(tag),
                    expected.join(", ")
                ),
            );
        }
    }
}

fn check_string(
    schema: &Map<String, Value>,
    s: &str,
    loc: &[String],
    errors: &mut Vec<StrictError>,
) {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        push(
            errors,
            loc,
            format!(
                "String should have at least {min} {}",
                plural(min, "character")
            ),
        );
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(s))
    {
        push(
            errors,
            loc,
            format!("String should match pattern '{pattern}'"),
        );
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        push(
            errors,
            loc,
            format!(
                "String should have at most {max} {}",
                plural(max, "character")
            ),
        );
    }
}

fn check_number(
    schema: &Map<String, Value>,
    n: f64,
    loc: &[String],
    errors: &mut Vec<StrictError>,
) {
    if let Some(min) = schema.get("minimum")
        && n < min.as_f64().unwrap_or(f64::MIN)
    {
        push(
            errors,
            loc,
            format!("Input should be greater than or equal to {min}"),
        );
    }
    if let Some(max) = schema.get("maximum")
        && n > max.as_f64().unwrap_or(f64::MAX)
    {
        push(
            errors,
            loc,
            format!("Input should be less than or equal to {max}"),
        );
    }
}

fn check_array(
    schema: &Map<String, Value>,
    items: &[Value],
    loc: &mut Vec<String>,
    errors: &mut Vec<StrictError>,
) {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        push(
            errors,
            loc,
            format!(
                "List should have at least {min} {} after validation, not {len}",
                plural(min, "item")
            ),
        );
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        push(
            errors,
            loc,
            format!(
                "List should have at most {max} {} after validation, not {len}",
                plural(max, "item")
            ),
        );
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            loc.push(i.to_string());
            check(item_schema, item, loc, errors);
            loc.pop();
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    loc: &mut Vec<String>,
    errors: &mut Vec<StrictError>,
) {
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Field order first (pydantic validates fields in definition order, kept in
    // `x-kiln-order` by `order.rs`), then extras.
    let order: Vec<&str> = match schema.get("x-kiln-order").and_then(Value::as_array) {
        Some(names) => names.iter().filter_map(Value::as_str).collect(),
        None => properties.keys().map(String::as_str).collect(),
    };
    for name in order {
        let Some(field_schema) = properties.get(name) else {
            continue;
        };
        loc.push(name.to_string());
        match map.get(name) {
            Some(value) => check(field_schema, value, loc, errors),
            None if required.contains(&name) => push(errors, loc, "Field required".into()),
            None => {}
        }
        loc.pop();
    }
    for (name, value) in map {
        if properties.contains_key(name) {
            continue;
        }
        loc.push(name.clone());
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => push(errors, loc, "Extra inputs are not permitted".into()),
            Some(extra @ Value::Object(_)) => check(extra, value, loc, errors),
            _ => {}
        }
        loc.pop();
    }
}

/// JSON Schema's types, without the coercions pydantic's lax mode would allow: an integer
/// is a JSON integer (not `1.0`), a boolean is `true`/`false`.
fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn type_message(kind: &str, schema: &Map<String, Value>) -> String {
    match kind {
        "integer" => "Input should be a valid integer".into(),
        "number" => "Input should be a valid number".into(),
        "string" => "Input should be a valid string".into(),
        "boolean" => "Input should be a valid boolean".into(),
        "null" => "Input should be None".into(),
        "array" => "Input should be a valid list".into(),
        "object" => match (
            schema.get("properties"),
            schema.get("title").and_then(Value::as_str),
        ) {
            (Some(_), Some(title)) => {
                format!("Input should be a valid dictionary or instance of {title}")
            }
            _ => "Input should be a valid dictionary".into(),
        },
        other => format!("Input should be of type {other}"),
    }
}

/// Equality without numeric coercion: `512.0` is not `512`, `1` is not `true`.
fn strict_eq(expected: &Value, value: &Value) -> bool {
    match (expected, value) {
        (Value::Number(a), Value::Number(b)) => {
            (a.is_f64() == b.is_f64()) && a.as_f64() == b.as_f64()
        }
        _ => expected == value,
    }
}

/// pydantic's literal list: `'A', 'B' or 'C'`.
fn one_of(options: &[Value]) -> String {
    let reprs: Vec<String> = options.iter().map(python_repr).collect();
    match reprs.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// How Python prints a literal.
pub(crate) fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, value: Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check(&schema, &value, &mut Vec::new(), &mut out);
        out.into_iter()
            .map(|e| (e.loc.join("."), e.message))
            .collect()
    }

    #[test]
    fn no_coercion() {
        let int = json!({"type": "integer"});
        assert_eq!(
            errors(int.clone(), json!("1"))[0].1,
            "Input should be a valid integer"
        );
        assert_eq!(
            errors(int.clone(), json!(1.0))[0].1,
            "Input should be a valid integer"
        );
        assert!(errors(int, json!(1)).is_empty());
        let boolean = json!({"type": "boolean"});
        assert_eq!(
            errors(boolean.clone(), json!(1))[0].1,
            "Input should be a valid boolean"
        );
        assert_eq!(
            errors(boolean, json!("true"))[0].1,
            "Input should be a valid boolean"
        );
        let blocksize = json!({"enum": [512, 1024, 2048, 4096]});
        assert_eq!(
            errors(blocksize.clone(), json!(512.0))[0].1,
            "Input should be 512, 1024, 2048 or 4096"
        );
        assert_eq!(
            errors(blocksize, json!("512"))[0].1,
            "Input should be 512, 1024, 2048 or 4096"
        );
        let nullable = json!({"anyOf": [{"type": "integer"}, {"type": "null"}]});
        assert_eq!(
            errors(nullable.clone(), json!("0"))[0].1,
            "Input should be a valid integer"
        );
        assert!(errors(nullable, Value::Null).is_empty());
    }

    #[test]
    fn objects_forbid_extras_and_name_the_field() {
        let schema = json!({"type": "object", "title": "T", "additionalProperties": false,
            "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {
                "type": "object", "properties": {"portal": {"type": "integer"}}, "required": ["portal"]}}},
            "required": ["a"]});
        assert_eq!(
            errors(schema.clone(), json!({"b": [{"portal": "1"}, {}], "c": 1})),
            vec![
                ("a".to_string(), "Field required".to_string()),
                (
                    "b.0.portal".to_string(),
                    "Input should be a valid integer".to_string()
                ),
                ("b.1.portal".to_string(), "Field required".to_string()),
                (
                    "c".to_string(),
                    "Extra inputs are not permitted".to_string()
                ),
            ]
        );
        assert_eq!(
            errors(schema, json!([]))[0].1,
            "Input should be a valid dictionary or instance of T"
        );
    }
}
