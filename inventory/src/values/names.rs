use std::fmt;
use std::str::FromStr;

use super::string_value;

fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// An RFC 1123 DNS label: what Kubernetes, hostnames and Proxmox VM names
/// all accept (lower-case letters, digits, `-`; at most 63 characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(String);

impl Label {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A label kiln made by joining valid labels with `-` (profile names);
    /// checked again because the result may grow past 63 characters.
    pub fn joined(parts: &[&str]) -> Result<Self, String> {
        parts.join("-").parse()
    }
}

impl FromStr for Label {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if is_label(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "invalid name `{text}`: use an RFC 1123 label (lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters)"
            ))
        }
    }
}

/// A DNS name: labels joined by dots (a search domain, an FQDN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DomainName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() <= 253 && text.split('.').all(is_label) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "invalid domain name `{text}`: use dot-separated RFC 1123 labels, like `lab.example.org`"
            ))
        }
    }
}

/// A Proxmox storage ID (`local-lvm`, `ceph_pool`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageId(String);

impl StorageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A storage ID kiln knows is valid (its defaults).
    pub(crate) fn known(id: &'static str) -> Self {
        Self(id.to_owned())
    }
}

impl FromStr for StorageId {
    type Err = String;

    /// PVE's `pve-storage-id` format.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = text.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "invalid storage ID `{text}`: Proxmox storage IDs start with a letter, then letters, digits, `-`, `_` or `.`"
            ))
        }
    }
}

/// A Proxmox VM tag (PVE's `pve-tag` format).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = text.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "invalid tag `{text}`: Proxmox tags are letters, digits, `_`, `-`, `+` and `.`, not starting with `-`, `+` or `.`"
            ))
        }
    }
}

macro_rules! display_inner {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_inner!(Label, DomainName, StorageId, Tag);

string_value!(
    Label,
    "label",
    Some("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"),
    "An RFC 1123 label: lower-case letters, digits and `-`."
);
string_value!(
    DomainName,
    "domain-name",
    Some(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"),
    "A DNS name, like lab.example.org."
);
string_value!(
    StorageId,
    "storage-id",
    Some(r"^[A-Za-z][A-Za-z0-9\-_.]*$"),
    "A Proxmox storage ID, like local-lvm."
);
string_value!(
    Tag,
    "tag",
    Some(r"^[A-Za-z0-9_][A-Za-z0-9_+.\-]*$"),
    "A Proxmox VM tag."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_rfc_1123() {
        for good in ["cp1", "a", "web-01", &"a".repeat(63)] {
            assert!(good.parse::<Label>().is_ok(), "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bad.parse::<Label>().is_err(), "{bad}");
        }
    }

    #[test]
    fn storage_ids_and_tags_follow_pve() {
        assert!("local-lvm".parse::<StorageId>().is_ok());
        assert!("1local".parse::<StorageId>().is_err());
        assert!("k8s+prod".parse::<Tag>().is_ok());
        assert!("-x".parse::<Tag>().is_err());
        assert!("lab.example.org".parse::<DomainName>().is_ok());
        assert!("lab..org".parse::<DomainName>().is_err());
    }
}
