use std::fmt;
use std::str::FromStr;

use super::string_value;

/// A size in bytes, written like Proxmox writes it: `8G`, `512M` (powers of
/// 1024, as in PVE), or with an explicit binary unit: `8GiB`, `512MiB`.
///
/// Decimal units (`GB`) are refused on purpose: Proxmox reads `G` as GiB,
/// and a silent 7% difference in a disk size is worse than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

const UNITS: [(&str, u32); 5] = [("", 0), ("K", 1), ("M", 2), ("G", 3), ("T", 4)];

impl ByteSize {
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    pub const fn from_mib(mib: u64) -> Self {
        Self(mib * 1024 * 1024)
    }

    pub const fn from_gib(gib: u64) -> Self {
        Self(gib * 1024 * 1024 * 1024)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Whole MiB, rounded up: the unit of Proxmox's `memory` key.
    pub fn mib_ceil(self) -> u64 {
        self.0.div_ceil(1024 * 1024)
    }

    /// Whole GiB, rounded up: the unit kiln uses for disk sizes on Proxmox.
    pub fn gib_ceil(self) -> u64 {
        self.0.div_ceil(1024 * 1024 * 1024)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid size `{text}`: expected a whole number and a unit, like 8GiB, 512MiB or 64G"
            )
        };
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit = unit.trim();
        if unit.len() == 2 && unit.ends_with(['B', 'b']) {
            return Err(format!(
                "invalid size `{text}`: `{unit}` is a decimal unit; write {number}{}iB or {number}{} (Proxmox reads G as GiB)",
                &unit[..1].to_uppercase(),
                &unit[..1].to_uppercase()
            ));
        }
        let unit = unit.strip_suffix("iB").unwrap_or(unit);
        let (_, power) = UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .ok_or_else(invalid)?;
        if number == 0 {
            return Err(format!(
                "invalid size `{text}`: a size must be larger than zero"
            ));
        }
        number
            .checked_mul(1024u64.pow(*power))
            .map(Self)
            .ok_or_else(|| format!("invalid size `{text}`: too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, power) = UNITS
            .iter()
            .rev()
            .find(|(_, power)| self.0.is_multiple_of(1024u64.pow(*power)))
            .unwrap_or(&UNITS[0]);
        if name.is_empty() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{}{name}iB", self.0 / 1024u64.pow(*power))
        }
    }
}

string_value!(
    ByteSize,
    "byte-size",
    Some(r"^\s*[0-9]+\s*([KkMmGgTt](iB)?)?\s*$"),
    "A size: a whole number with K, M, G or T (powers of 1024, as Proxmox reads them), e.g. 8GiB, 512M."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_units_as_proxmox_does() {
        assert_eq!("8GiB".parse::<ByteSize>().unwrap(), ByteSize::from_gib(8));
        assert_eq!("64G".parse::<ByteSize>().unwrap(), ByteSize::from_gib(64));
        assert_eq!("512M".parse::<ByteSize>().unwrap(), ByteSize::from_mib(512));
        assert_eq!("1 TiB".parse::<ByteSize>().unwrap().gib_ceil(), 1024);
        assert_eq!("4096".parse::<ByteSize>().unwrap().bytes(), 4096);
    }

    #[test]
    fn refuses_decimal_units_fractions_and_zero() {
        for bad in ["8GB", "1.5G", "0G", "G", "-1G", "8 gigs", ""] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn displays_in_the_largest_whole_unit() {
        assert_eq!(ByteSize::from_mib(2048).to_string(), "2GiB");
        assert_eq!(ByteSize::from_mib(1536).to_string(), "1536MiB");
    }
}
