//! Checks request parameters against a method's `parameters` schema, with PVE's wording
//! (pve-common `JSONSchema.pm`: `check_prop`, `check_type`, `check_object`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::formats::check_format;
use super::property_string::parse_property_string;

/// Per-parameter error messages, as PVE puts them in the `errors` map of a 400.
pub type ParamErrors = BTreeMap<String, String>;

const NOT_IN_SCHEMA: &str =
    "property is not defined in schema and the schema does not allow additional properties";
const MISSING: &str = "property is missing and it is not optional";

/// Validates `params` (path variables included, as PVE merges them) against `schema`.
pub fn validate_params(
    params: &BTreeMap<String, String>,
    schema: &Value,
) -> Result<(), ParamErrors> {
    let empty = Map::new();
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let additional = schema.get("additionalProperties").and_then(Value::as_i64) == Some(1);
    let mut errors = ParamErrors::new();
    for (key, value) in params {
        match lookup_property(props, key) {
            Some(prop) => {
                if let Err(msg) = check_value(key, value, prop) {
                    errors.insert(key.clone(), msg);
                }
            }
            None if additional => {}
            None => {
                errors.insert(key.clone(), NOT_IN_SCHEMA.to_string());
            }
        }
    }
    for (name, prop) in props {
        if name.ends_with("[n]") || is_optional(prop) || prop.get("alias").is_some() {
            continue;
        }
        if !params.contains_key(name) {
            errors.insert(name.clone(), MISSING.to_string());
        }
    }
    for key in params.keys() {
        let Some(prop) = lookup_property(props, key) else {
            continue;
        };
        if let Some(required) = prop.get("requires").and_then(Value::as_str)
            && !params.contains_key(required)
        {
            errors.insert(
                required.to_string(),
                format!("missing property - '{key}' requires this property"),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The schema of `key`: an exact property, or an indexed one such as `net[n]` for `net3`.
fn lookup_property<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(prop) = props.get(key) {
        return Some(prop);
    }
    let digits = key.len() - key.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == key.len() {
        return None;
    }
    let (base, index) = key.split_at(key.len() - digits);
    if index.len() > 1 && index.starts_with('0') {
        return None;
    }
    let index: u32 = index.parse().ok()?;
    (index < max_index(base))
        .then(|| props.get(&format!("{base}[n]")))
        .flatten()
}

/// How many instances of an indexed key PVE allows (qemu-server's `MAX_*` constants);
/// the schema only says `[n]`.
fn max_index(base: &str) -> u32 {
    match base {
        "ide" => 4,
        "sata" => 6,
        "scsi" => 31,
        "virtio" => 16,
        "net" | "ipconfig" => 32,
        "serial" => 4,
        "parallel" => 3,
        "usb" => 14,
        "hostpci" => 16,
        "numa" => 8,
        "virtiofs" => 10,
        _ => 256,
    }
}

fn is_optional(prop: &Value) -> bool {
    prop.get("optional").and_then(Value::as_i64) == Some(1)
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Type, range, length, enum, pattern and format checks of one value.
fn check_value(key: &str, value: &str, prop: &Value) -> Result<(), String> {
    let kind = prop.get("type").and_then(Value::as_str).unwrap_or("string");
    match kind {
        "boolean" => {
            let lower = value.to_ascii_lowercase();
            if !matches!(
                lower.as_str(),
                "1" | "0" | "true" | "false" | "yes" | "no" | "on" | "off"
            ) {
                return Err(format!("type check ('boolean') failed - got '{value}'"));
            }
        }
        "integer" | "number" => {
            let ok = if kind == "integer" {
                is_integer(value)
            } else {
                is_number(value)
            };
            if !ok {
                return Err(format!("type check ('{kind}') failed - got '{value}'"));
            }
            let n: f64 = value
                .parse()
                .map_err(|_| format!("type check ('{kind}') failed - got '{value}'"))?;
            if let Some(min) = prop.get("minimum").and_then(number_of)
                && n < min
            {
                return Err(format!("value must have a minimum value of {}", show(min)));
            }
            if let Some(max) = prop.get("maximum").and_then(number_of)
                && n > max
            {
                return Err(format!("value must have a maximum value of {}", show(max)));
            }
        }
        "array" | "object" | "null" => {}
        _ => check_string(key, value, prop)?,
    }
    if let Some(choices) = prop.get("enum").and_then(Value::as_array) {
        let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
        if !names.contains(&value) {
            return Err(format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                names.join(", ")
            ));
        }
    }
    match prop.get("format") {
        Some(Value::String(format)) => {
            check_format(format, value).map_err(|e| format!("invalid format - {e}\n"))
        }
        Some(Value::Object(dict)) => check_property_string(key, value, dict),
        _ => Ok(()),
    }
}

/// Validates a property string; the message lists the bad sub-property as PVE does
/// (`invalid format - format error\nnet0.model: ...`).
fn check_property_string(
    param: &str,
    value: &str,
    dict: &Map<String, Value>,
) -> Result<(), String> {
    let fail = |sub: &str, msg: &str| {
        let path = if sub.is_empty() {
            param.to_string()
        } else {
            format!("{param}.{sub}")
        };
        Err(format!("invalid format - format error\n{path}: {msg}\n"))
    };
    let parsed = match parse_property_string(value, dict) {
        Ok(p) => p,
        Err((sub, msg)) => return fail(&sub, &msg),
    };
    for (key, val) in &parsed {
        match dict.get(key) {
            Some(prop) => {
                if let Err(msg) = check_value(key, val, prop) {
                    return fail(key, msg.trim_end());
                }
            }
            None => {
                return fail(
                    key,
                    "property is not defined in schema and the schema does not allow additional properties",
                );
            }
        }
    }
    for (key, prop) in dict {
        let optional = prop.get("optional").and_then(Value::as_i64) == Some(1);
        if !optional && prop.get("alias").is_none() && !parsed.contains_key(key) {
            return fail(key, "property is missing and it is not optional");
        }
    }
    Ok(())
}

fn check_string(_key: &str, value: &str, prop: &Value) -> Result<(), String> {
    let len = value.chars().count();
    if let Some(max) = prop.get("maxLength").and_then(number_of)
        && len as f64 > max
    {
        return Err(format!("value may only be {} characters long", show(max)));
    }
    if let Some(min) = prop.get("minLength").and_then(number_of)
        && (len as f64) < min
    {
        return Err(format!(
            "value must be at least {} characters long",
            show(min)
        ));
    }
    if let Some(pattern) = prop.get("pattern").and_then(Value::as_str) {
        // PVE anchors the pattern on both ends (`m/^$pattern$/`).
        let anchored = format!("^(?:{pattern})$");
        let ok = regex::Regex::new(&anchored).is_ok_and(|re| re.is_match(value));
        if !ok {
            return Err("value does not match the regex pattern".to_string());
        }
    }
    Ok(())
}

fn is_integer(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_number(value: &str) -> bool {
    value.parse::<f64>().is_ok_and(f64::is_finite)
        && !value.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
}

fn show(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pve_wording_for_common_mistakes() {
        let schema = json!({"additionalProperties": 0, "properties": {
            "vmid": {"type": "integer", "minimum": 100, "format": "pve-vmid"},
            "net[n]": {"type": "string", "optional": 1},
            "full": {"type": "boolean", "optional": 1},
        }});
        let errs =
            validate_params(&params(&[("bogus", "1"), ("full", "maybe")]), &schema).unwrap_err();
        assert_eq!(errs["bogus"], NOT_IN_SCHEMA);
        assert_eq!(errs["vmid"], MISSING);
        assert_eq!(errs["full"], "type check ('boolean') failed - got 'maybe'");
        let errs =
            validate_params(&params(&[("vmid", "abc"), ("net32", "x")]), &schema).unwrap_err();
        assert_eq!(errs["vmid"], "type check ('integer') failed - got 'abc'");
        assert_eq!(errs["net32"], NOT_IN_SCHEMA);
        let errs = validate_params(&params(&[("vmid", "99")]), &schema).unwrap_err();
        assert_eq!(errs["vmid"], "value must have a minimum value of 100");
        assert!(validate_params(&params(&[("vmid", "100"), ("net31", "x")]), &schema).is_ok());
    }

    #[test]
    fn property_strings_name_the_bad_sub_property() {
        let dict = json!({
            "model": {"type": "string", "default_key": 1, "enum": ["virtio", "e1000"]},
            "macaddr": {"type": "string", "optional": 1, "format": "mac-addr"},
            "virtio": {"alias": "macaddr", "keyAlias": "model"},
            "bridge": {"type": "string", "optional": 1},
        });
        let dict = dict.as_object().unwrap();
        assert!(check_property_string("net0", "virtio,bridge=vmbr0", dict).is_ok());
        let err = check_property_string("net0", "virtio,colour=red", dict).unwrap_err();
        assert!(
            err.contains("net0.colour: property is not defined"),
            "{err}"
        );
        let err = check_property_string("net0", "bridge=vmbr0", dict).unwrap_err();
        assert!(err.contains("net0.model: property is missing"), "{err}");
    }
}
