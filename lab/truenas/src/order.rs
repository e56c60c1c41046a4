//! The order of a model's fields. pydantic validates fields in definition order and reports
//! its errors in that order; the schema file keeps it, but `serde_json::Value` (without the
//! workspace-wide `preserve_order` feature, which would change every other crate's maps)
//! sorts object keys. So the file is read a second time, keeping key order, and every
//! object schema with `properties` gets the names in file order as `x-kiln-order` (an
//! unknown keyword, which JSON Schema validators ignore).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON value whose objects keep their key order.
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Other,
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;

        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
                    entries.push((key, value));
                }
                Ok(Ordered::Object(entries))
            }
        }

        deserializer.deserialize_any(OrderedVisitor)
    }
}

/// Adds `x-kiln-order` to every object schema of `value`, from the same document's `text`.
pub(crate) fn annotate(value: &mut Value, text: &str) -> Result<(), String> {
    let ordered: Ordered = serde_json::from_str(text).map_err(|e| e.to_string())?;
    walk(value, &ordered);
    Ok(())
}

fn walk(value: &mut Value, ordered: &Ordered) {
    match (value, ordered) {
        (Value::Object(map), Ordered::Object(entries)) => {
            for (key, child) in entries {
                if let Some(child_value) = map.get_mut(key) {
                    walk(child_value, child);
                }
            }
            let names = entries.iter().find_map(|(key, child)| match child {
                Ordered::Object(props) if key == "properties" => Some(
                    props
                        .iter()
                        .map(|(name, _)| Value::String(name.clone()))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            });
            // Only a schema of type object: a map of field names may have a field called
            // `properties`, but its `type` (if it has a field of that name) is no string.
            let is_schema = map.get("type").and_then(Value::as_str) == Some("object");
            if let (true, Some(names), Some(Value::Object(_))) =
                (is_schema, names, map.get("properties"))
            {
                map.insert("x-kiln-order".into(), Value::Array(names));
            }
        }
        (Value::Array(items), Ordered::Array(ordered_items)) => {
            for (item, ordered_item) in items.iter_mut().zip(ordered_items) {
                walk(item, ordered_item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_schemas_learn_their_field_order() {
        let text = r#"{"a": {"type": "object", "properties": {"zeta": {}, "alpha": {"type": "object", "properties": {"y": {}, "b": {}}}}}}"#;
        let mut value: Value = serde_json::from_str(text).unwrap();
        annotate(&mut value, text).unwrap();
        assert_eq!(
            value["a"]["x-kiln-order"],
            serde_json::json!(["zeta", "alpha"])
        );
        assert_eq!(
            value["a"]["properties"]["alpha"]["x-kiln-order"],
            serde_json::json!(["y", "b"])
        );
    }
}
