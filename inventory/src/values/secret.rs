use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;

use super::string_value;

/// Where a secret lives. The inventory never holds a secret value itself:
/// `vault:<mount>/<path>#<key>`, `file:<name>` (kiln's encrypted store) or
/// `env:<VAR>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretRef {
    Vault {
        mount: String,
        path: String,
        key: String,
    },
    File {
        name: String,
    },
    Env {
        var: String,
    },
}

pub(crate) const SECRET_REF_FORMS: &str =
    "`vault:<mount>/<path>#<key>`, `file:<name>` or `env:<VAR>`";

fn parse_env_var(var: &str) -> Result<String, String> {
    let mut chars = var.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if valid_start && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(var.to_owned())
    } else {
        Err(format!(
            "invalid environment variable name `{var}` in an `env:` reference: use letters, digits and `_`"
        ))
    }
}

impl FromStr for SecretRef {
    type Err = String;

    /// The error never repeats the text: a malformed reference may be a
    /// pasted secret.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("vault:") {
            let (location, key) = rest.split_once('#').ok_or_else(|| {
                "a `vault:` reference needs a key after `#`: `vault:<mount>/<path>#<key>`"
                    .to_owned()
            })?;
            let (mount, path) = location.split_once('/').ok_or_else(|| {
                "a `vault:` reference needs a mount and a path: `vault:<mount>/<path>#<key>`"
                    .to_owned()
            })?;
            let path = path.trim_matches('/');
            if mount.is_empty() || path.is_empty() || key.is_empty() {
                return Err(
                    "a `vault:` reference needs a mount, a path and a key: `vault:<mount>/<path>#<key>`"
                        .to_owned(),
                );
            }
            return Ok(Self::Vault {
                mount: mount.to_owned(),
                path: path.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(name) = text.strip_prefix("file:") {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
                && !name.split('/').any(|part| part.is_empty() || part == "..");
            return if valid {
                Ok(Self::File {
                    name: name.to_owned(),
                })
            } else {
                Err("a `file:` reference names an entry of kiln's secret store: letters, digits, `-`, `_`, `.` and `/`".to_owned())
            };
        }
        if let Some(var) = text.strip_prefix("env:") {
            return parse_env_var(var).map(|var| Self::Env { var });
        }
        Err(format!(
            "this field holds a secret, so it must be a reference ({SECRET_REF_FORMS}), not the secret itself; the value is not shown"
        ))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vault { mount, path, key } => write!(f, "vault:{mount}/{path}#{key}"),
            Self::File { name } => write!(f, "file:{name}"),
            Self::Env { var } => write!(f, "env:{var}"),
        }
    }
}

string_value!(
    SecretRef,
    "secret-ref",
    Some(r"^(vault:[^/#]+/[^#]+#.+|file:[A-Za-z0-9._/-]+|env:[A-Za-z_][A-Za-z0-9_]*)$"),
    "A reference to a secret, never the secret: vault:<mount>/<path>#<key>, file:<name> or env:<VAR>."
);

/// A setting that differs per environment but is not secret (an endpoint, a
/// certificate fingerprint): the value itself, or `env:<VAR>` to read it at
/// run time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EnvOr<T> {
    Value(T),
    Env(String),
}

impl<T> EnvOr<T> {
    /// The environment variable, when the value is read from one.
    pub fn env_var(&self) -> Option<&str> {
        match self {
            Self::Value(_) => None,
            Self::Env(var) => Some(var),
        }
    }
}

impl<T: FromStr<Err = String>> EnvOr<T> {
    /// The value, reading the environment where the inventory says so.
    pub fn resolve(&self) -> Result<T, String>
    where
        T: Clone,
    {
        match self {
            Self::Value(value) => Ok(value.clone()),
            Self::Env(var) => {
                let text = std::env::var(var)
                    .map_err(|_| format!("environment variable `{var}` is not set"))?;
                text.parse()
                    .map_err(|error| format!("environment variable `{var}`: {error}"))
            }
        }
    }
}

impl<T: FromStr<Err = String>> FromStr for EnvOr<T> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix("env:") {
            Some(var) => parse_env_var(var).map(Self::Env),
            None => text.parse().map(Self::Value),
        }
    }
}

impl<T: fmt::Display> fmt::Display for EnvOr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(value) => value.fmt(f),
            Self::Env(var) => write!(f, "env:{var}"),
        }
    }
}

impl<T: fmt::Display> serde::Serialize for EnvOr<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de, T: FromStr<Err = String>> serde::Deserialize<'de> for EnvOr<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl<T: JsonSchema> JsonSchema for EnvOr<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("EnvOr{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let inner = T::json_schema(generator);
        let format = inner
            .get("x-kiln-format")
            .and_then(|format| format.as_str())
            .map(|format| format!("env-or-{format}"));
        let description = inner
            .get("description")
            .and_then(|description| description.as_str())
            .unwrap_or_default();
        let mut schema = schemars::json_schema!({
            "type": "string",
            "description": format!("{description} Or env:<VAR> to read it from the environment."),
        });
        if let Some(format) = format {
            schema.insert("x-kiln-format".into(), format.into());
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "vault:kv/kiln/proxmox#token".parse::<SecretRef>().unwrap(),
            SecretRef::Vault {
                mount: "kv".into(),
                path: "kiln/proxmox".into(),
                key: "token".into()
            }
        );
        assert_eq!(
            "file:ssh/kiln".parse::<SecretRef>().unwrap(),
            SecretRef::File {
                name: "ssh/kiln".into()
            }
        );
        assert_eq!(
            "env:PVE_TOKEN".parse::<SecretRef>().unwrap(),
            SecretRef::Env {
                var: "PVE_TOKEN".into()
            }
        );
    }

    #[test]
    fn a_literal_secret_is_refused_without_being_repeated() {
        let error = "hunter2-secret".parse::<SecretRef>().unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("must be a reference"), "{error}");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "vault:kv#key",
            "vault:kv/path",
            "vault:/p#k",
            "file:",
            "file:../x",
            "env:1X",
            "env:",
        ] {
            assert!(bad.parse::<SecretRef>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn round_trips_through_display() {
        for text in ["vault:kv/a/b#c", "file:x", "env:Y"] {
            assert_eq!(text.parse::<SecretRef>().unwrap().to_string(), text);
        }
    }
}
