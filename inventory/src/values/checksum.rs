use std::fmt;
use std::str::FromStr;

use super::string_value;

/// An image checksum pinned in the inventory: `sha256:<hex>` or
/// `sha512:<hex>` (the algorithms distributions publish and PVE's
/// download-url verifies).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha512,
}

impl ChecksumAlgorithm {
    /// The name Proxmox's `checksum-algorithm` parameter takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

impl FromStr for Checksum {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = text.split_once(':').ok_or_else(|| {
            format!("invalid checksum `{text}`: expected sha256:<hex> or sha512:<hex>")
        })?;
        let algorithm = match algorithm {
            "sha256" => ChecksumAlgorithm::Sha256,
            "sha512" => ChecksumAlgorithm::Sha512,
            other => {
                return Err(format!(
                    "unsupported checksum algorithm `{other}`: use sha256 or sha512"
                ));
            }
        };
        if hex.len() != algorithm.hex_len() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "invalid checksum `{text}`: a {} checksum is {} hex digits",
                algorithm.as_str(),
                algorithm.hex_len()
            ));
        }
        Ok(Self {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

string_value!(
    Checksum,
    "checksum",
    Some("^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$"),
    "A pinned checksum, sha256:<hex> or sha512:<hex>."
);
