use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 certificate fingerprint, the form Proxmox VE, TrueNAS and Talos
/// show for their self-signed certificates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 fingerprint {input:?}: {reason}")]
pub struct FingerprintError {
    /// The text as given (fingerprints are public, so it is safe to show).
    pub input: String,
    pub reason: &'static str,
}

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(cert_der: &[u8]) -> Self {
        Self(Sha256::digest(cert_der).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Accepts `AB:CD:…` (either case) and plain hex; surrounding whitespace
    /// is ignored because fingerprints are often pasted from a terminal.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| FingerprintError {
            input: s.to_owned(),
            reason,
        };
        let trimmed = s.trim();
        let hex_digits: String = if trimmed.contains(':') {
            let parts: Vec<&str> = trimmed.split(':').collect();
            if parts.iter().any(|p| p.len() != 2) {
                return Err(err(
                    "colon-separated form needs exactly two hex digits per byte",
                ));
            }
            parts.concat()
        } else {
            trimmed.to_owned()
        };
        if hex_digits.len() != 64 {
            return Err(err("expected 32 bytes (64 hex digits)"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&hex_digits, &mut bytes).map_err(|_| err("not hexadecimal"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    /// Upper-case, colon-separated: the way the PVE web UI and `pvenode cert
    /// info` print it, so users can compare by eye.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLON: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    #[test]
    fn parses_upper_lower_and_plain_forms() {
        let upper: Fingerprint = COLON.parse().unwrap();
        let lower: Fingerprint = COLON.to_lowercase().parse().unwrap();
        let plain: Fingerprint = COLON.replace(':', "").parse().unwrap();
        let padded: Fingerprint = format!("  {COLON}\n").parse().unwrap();
        assert_eq!(upper, lower);
        assert_eq!(upper, plain);
        assert_eq!(upper, padded);
    }

    #[test]
    fn displays_upper_case_with_colons() {
        let fp: Fingerprint = COLON.to_lowercase().parse().unwrap();
        assert_eq!(fp.to_string(), COLON);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({COLON})"));
    }

    #[test]
    fn rejects_bad_input() {
        let bad_inputs = [
            String::new(),
            "AB:CD".to_owned(),
            COLON[..COLON.len() - 3].to_owned(),
            COLON.replace("AB", "ZZ"),
            format!("A:B{}", &COLON[2..]),
            "0".repeat(66),
            "é".repeat(32),
        ];
        for bad in &bad_inputs {
            assert!(bad.parse::<Fingerprint>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn of_der_is_sha256() {
        // SHA-256 of the empty input, a well-known vector.
        let fp = Fingerprint::of_der(b"");
        assert_eq!(
            hex::encode(fp.as_bytes()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_parses_back(bytes in any::<[u8; 32]>()) {
            let fp = Fingerprint::from_bytes(bytes);
            prop_assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
            prop_assert_eq!(hex::encode(bytes).parse::<Fingerprint>().unwrap(), fp);
        }

        #[test]
        fn never_panics_on_any_input(s in ".{0,120}") {
            let _ = s.parse::<Fingerprint>();
        }
    }
}
