//! Request parameters: form fields (POST/PUT) or query (GET/DELETE), with
//! secret values kept as `SecretString` until the request is serialized.

use secrecy::{ExposeSecret, SecretString};
use serde::ser::{Serialize, SerializeSeq, Serializer};

#[derive(Debug, Clone)]
enum Value {
    Plain(String),
    Secret(SecretString),
}

/// An ordered list of `key=value` parameters. Its `Debug` output never shows
/// secret values.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, Value)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`, replacing an earlier value.
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.put(key, Value::Plain(value.to_string()));
        self
    }

    pub fn set_opt<V: ToString>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// PVE booleans are `0`/`1`.
    pub fn flag(self, key: &str, on: bool) -> Self {
        self.set(key, if on { "1" } else { "0" })
    }

    pub fn flag_opt(self, key: &str, on: Option<bool>) -> Self {
        match on {
            Some(b) => self.flag(key, b),
            None => self,
        }
    }

    pub fn secret(mut self, key: &str, value: SecretString) -> Self {
        self.put(key, Value::Secret(value));
        self
    }

    fn put(&mut self, key: &str, value: Value) {
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.0.push((key.to_owned(), value));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The plain (non-secret) value of `key`, for tests and logging.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| match v {
                Value::Plain(s) => Some(s.as_str()),
                Value::Secret(_) => None,
            })
    }

    /// Key names only: safe to log.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Pairs with secrets exposed, for building multipart bodies.
    pub(crate) fn exposed_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| {
            let v = match v {
                Value::Plain(s) => s.as_str(),
                Value::Secret(s) => s.expose_secret(),
            };
            (k.as_str(), v)
        })
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for pair in self.exposed_pairs() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_but_form_carries_them() {
        let p = Params::new()
            .set("ciuser", "kiln")
            .secret("cipassword", SecretString::from("hunter2-secret"))
            .flag("agent", true);
        assert!(!format!("{p:?}").contains("hunter2-secret"));
        let form = serde_json::to_string(&p).unwrap();
        assert!(form.contains("hunter2-secret"));
        assert_eq!(p.get("agent"), Some("1"));
        assert_eq!(p.get("cipassword"), None);
    }

    #[test]
    fn set_replaces() {
        let p = Params::new().set("a", 1).set("a", 2);
        assert_eq!(p.keys().count(), 1);
        assert_eq!(p.get("a"), Some("2"));
    }
}
