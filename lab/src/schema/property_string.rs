//! PVE "property strings" (`virtio=BC:24:11:..,bridge=vmbr0`): a value whose format is a
//! dictionary of sub-properties, with a `default_key`, aliases and key aliases
//! (pve-common `JSONSchema.pm:parse_property_string`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::validate::check_value;

/// Parses `value` into its sub-properties, resolving aliases; errors name the sub-key.
pub(crate) fn parse_property_string(
    value: &str,
    dict: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, (String, String)> {
    let default_key = dict
        .iter()
        .find(|(_, p)| p.get("default_key").and_then(Value::as_i64) == Some(1))
        .map(|(k, _)| k.clone());
    let mut out = BTreeMap::new();
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match &default_key {
                Some(k) if !out.contains_key(k) => (k.clone(), part.to_string()),
                _ => {
                    return Err((
                        "".to_string(),
                        format!(
                            "value without key, but schema does not define a default key: '{part}'"
                        ),
                    ));
                }
            },
        };
        let (key, val) = match dict.get(&key) {
            Some(p) => match (
                p.get("alias").and_then(Value::as_str),
                p.get("keyAlias").and_then(Value::as_str),
            ) {
                (Some(alias), Some(key_alias)) => {
                    insert_unique(&mut out, key_alias, &key)?;
                    (alias.to_string(), val)
                }
                (Some(alias), None) => (alias.to_string(), val),
                _ => (key, val),
            },
            None => (key, val),
        };
        insert_unique(&mut out, &key, &val)?;
    }
    Ok(out)
}

fn insert_unique(
    out: &mut BTreeMap<String, String>,
    key: &str,
    val: &str,
) -> Result<(), (String, String)> {
    if out.insert(key.to_string(), val.to_string()).is_some() {
        return Err((
            key.to_string(),
            format!("duplicate key in comma-separated list property: {key}"),
        ));
    }
    Ok(())
}

/// Validates a property string; the message lists the bad sub-property as PVE does
/// (`invalid format - format error\nnet0.model: ...`).
pub(crate) fn check_property_string(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_alias_sets_model_and_mac() {
        let dict = json!({
            "model": {"type": "string", "default_key": 1, "enum": ["virtio", "e1000"]},
            "macaddr": {"type": "string", "optional": 1, "format": "mac-addr"},
            "virtio": {"alias": "macaddr", "keyAlias": "model"},
            "bridge": {"type": "string", "optional": 1},
        });
        let dict = dict.as_object().unwrap();
        let p = parse_property_string("virtio=BC:24:11:00:00:01,bridge=vmbr0", dict).unwrap();
        assert_eq!(p["model"], "virtio");
        assert_eq!(p["macaddr"], "BC:24:11:00:00:01");
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
