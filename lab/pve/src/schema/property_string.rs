//! PVE "property strings" (`virtio=BC:24:11:..,bridge=vmbr0`): a value whose format is a
//! dictionary of sub-properties, with a `default_key`, aliases and key aliases
//! (pve-common `JSONSchema.pm:parse_property_string`). Parsing only: `validate` checks the
//! parsed sub-properties like any other value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_alias_sets_model_and_mac_and_keys_are_unique() {
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
        let p = parse_property_string("virtio,bridge=vmbr0", dict).unwrap();
        assert_eq!(p["model"], "virtio");
        let (sub, err) = parse_property_string("bridge=a,bridge=b", dict).unwrap_err();
        assert_eq!(sub, "bridge");
        assert!(err.contains("duplicate key"), "{err}");
    }
}
