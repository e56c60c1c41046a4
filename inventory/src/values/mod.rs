//! Typed scalar values of the inventory.
//!
//! Each is written as a string in YAML, parsed by `FromStr` with a message
//! that says what was expected, and described in the JSON Schema with a
//! pattern (for editors) and an `x-kiln-format` name. The shape check calls
//! [`check_format`] with that name so that *every* malformed value is reported
//! at once, not only the first one serde trips on.

mod checksum;
mod duration;
mod names;
mod net;
mod secret;
mod size;
mod url;
mod version;
mod vmid;

pub use checksum::{Checksum, ChecksumAlgorithm};
pub use duration::Interval;
pub use names::{DomainName, Label, StorageId, Tag};
pub use net::{Cidr4, Cidr6, Fingerprint, Ipv4Range, MacAddr, VmidRange};
pub use secret::{EnvOr, SecretRef};
pub use size::ByteSize;
pub use url::HttpUrl;
pub use version::Version;
pub use vmid::Vmid;

/// Runs the parser behind an `x-kiln-format` name; `None` for an unknown name.
pub(crate) fn check_format(format: &str, value: &str) -> Option<Result<(), String>> {
    fn run<T: std::str::FromStr<Err = String>>(value: &str) -> Result<(), String> {
        value.parse::<T>().map(drop)
    }
    let result = match format {
        "label" => run::<Label>(value),
        "domain-name" => run::<DomainName>(value),
        "storage-id" => run::<StorageId>(value),
        "tag" => run::<Tag>(value),
        "byte-size" => run::<ByteSize>(value),
        "interval" => run::<Interval>(value),
        "version" => run::<Version>(value),
        "checksum" => run::<Checksum>(value),
        "http-url" => run::<HttpUrl>(value),
        "cidr4" => run::<Cidr4>(value),
        "cidr6" => run::<Cidr6>(value),
        "mac" => run::<MacAddr>(value),
        "ipv4-range" => run::<Ipv4Range>(value),
        "vmid-range" => run::<VmidRange>(value),
        "sha256-fingerprint" => run::<Fingerprint>(value),
        "secret-ref" => run::<SecretRef>(value),
        "env-or-http-url" => run::<EnvOr<HttpUrl>>(value),
        "env-or-sha256-fingerprint" => run::<EnvOr<Fingerprint>>(value),
        _ => return None,
    };
    Some(result)
}

/// Implements `Display`-based `Serialize`, `FromStr`-based `Deserialize` and a
/// string `JsonSchema` carrying `x-kiln-format` for a value type.
macro_rules! string_value {
    ($ty:ty, $format:literal, $pattern:expr, $description:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let pattern: Option<&str> = $pattern;
                let mut schema = schemars::json_schema!({
                    "type": "string",
                    "description": $description,
                    "x-kiln-format": $format,
                });
                if let Some(pattern) = pattern {
                    schema.insert("pattern".into(), pattern.into());
                }
                schema
            }
        }
    };
}
pub(crate) use string_value;
