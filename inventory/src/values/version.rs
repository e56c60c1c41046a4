use std::fmt;
use std::str::FromStr;

use super::string_value;

/// A release version as the distributions write it: `v1.31.2+k3s1`,
/// `v1.8.3`, `1.31.2`. Kept with its original spelling for display; compared
/// as semantic versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    text: String,
    semver: semver::Version,
}

impl Version {
    pub fn semver(&self) -> &semver::Version {
        &self.semver
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bare = text.strip_prefix('v').unwrap_or(text);
        let semver = semver::Version::parse(bare).map_err(|error| {
            format!("invalid version `{text}`: {error}; expected e.g. v1.31.2+k3s1 or v1.8.3")
        })?;
        Ok(Self {
            text: text.to_owned(),
            semver,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

string_value!(
    Version,
    "version",
    Some(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$"),
    "A release version, like v1.31.2+k3s1 or v1.8.3."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k3s_and_talos_versions() {
        let k3s: Version = "v1.31.2+k3s1".parse().unwrap();
        assert_eq!(k3s.semver().minor, 31);
        assert_eq!(k3s.to_string(), "v1.31.2+k3s1");
        assert!("v1.8".parse::<Version>().is_err());
        assert!("latest".parse::<Version>().is_err());
    }
}
