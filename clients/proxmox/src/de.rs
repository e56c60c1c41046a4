//! Lenient deserializers: PVE sends numbers as strings in some lists and
//! booleans as 0/1, and old releases differ from new ones.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Any scalar rendered as text (config values can be either).
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    }
}

pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(as_u64))
}

pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(opt_u64(d)?.and_then(|v| u32::try_from(v).ok()))
}

pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(as_f64))
}

pub(crate) fn bool01<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(as_bool)
        .unwrap_or(false))
}

pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(scalar_text)
        .filter(|s| !s.is_empty()))
}

pub(crate) fn vmid<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_u32(d)?.ok_or_else(|| serde::de::Error::custom("vmid missing or not a number"))
}

/// PVE tag lists: split on `;`, `,` or whitespace (`pve-tag-list`).
pub(crate) fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(opt_string(d)?.map(|s| split_tags(&s)).unwrap_or_default())
}

pub fn split_tags(s: &str) -> Vec<String> {
    s.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `/cluster/nextid` answers a string; accept a number too.
pub(crate) fn id_value(v: &Value) -> Option<u32> {
    as_u64(v).and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "bool01")]
        b: bool,
        #[serde(default, deserialize_with = "tags")]
        tags: Vec<String>,
    }

    #[test]
    fn numbers_as_strings_and_bools_as_ints() {
        let t: T = serde_json::from_str(r#"{"n":"42","b":1,"tags":"kiln-lab;web, x"}"#).unwrap();
        assert_eq!(t.n, Some(42));
        assert!(t.b);
        assert_eq!(t.tags, ["kiln-lab", "web", "x"]);
        let t: T = serde_json::from_str(r#"{"n":42.0,"b":"0"}"#).unwrap();
        assert_eq!(t.n, Some(42));
        assert!(!t.b);
        assert!(t.tags.is_empty());
        let t: T = serde_json::from_str(r#"{"n":null,"b":null}"#).unwrap();
        assert_eq!(t.n, None);
    }
}
