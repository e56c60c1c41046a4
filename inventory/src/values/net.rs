use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::string_value;
use super::vmid::{VMID_MAX, VMID_MIN};

/// An IPv4 network in CIDR form, written as its network address
/// (`10.0.0.0/24`, not `10.0.0.7/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr4(pub Ipv4Net);

impl FromStr for Cidr4 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let net: Ipv4Net = text.parse().map_err(|_| {
            format!("invalid IPv4 network `{text}`: expected CIDR form, like 10.0.0.0/24")
        })?;
        if net.addr() != net.network() {
            return Err(format!(
                "`{text}` is an address, not a network: did you mean `{}`?",
                net.trunc()
            ));
        }
        if net.prefix_len() > 30 {
            return Err(format!(
                "network `{text}` is too small for a cluster: use a /30 or larger"
            ));
        }
        Ok(Self(net))
    }
}

/// An IPv6 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr6(pub Ipv6Net);

impl FromStr for Cidr6 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let net: Ipv6Net = text.parse().map_err(|_| {
            format!("invalid IPv6 network `{text}`: expected CIDR form, like fd00:10::/64")
        })?;
        if net.addr() != net.network() {
            return Err(format!(
                "`{text}` is an address, not a network: did you mean `{}`?",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

/// A unicast Ethernet MAC address, `BC:24:11:00:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!("invalid MAC address `{text}`: expected six hex pairs, like BC:24:11:00:00:01")
        };
        let mut bytes = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut bytes {
            let part = parts
                .next()
                .filter(|part| part.len() == 2)
                .ok_or_else(invalid)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        if bytes[0] & 1 == 1 {
            return Err(format!(
                "MAC address `{text}` is a multicast address: a NIC needs a unicast one (even first byte)"
            ));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// An inclusive range of IPv4 addresses, `10.0.0.200-10.0.0.220`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ipv4Range {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Ipv4Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    pub fn count(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid address range `{text}`: expected FIRST-LAST, like 10.0.0.200-10.0.0.220"
            )
        };
        let (first, last) = text.split_once('-').ok_or_else(invalid)?;
        let first: Ipv4Addr = first.trim().parse().map_err(|_| invalid())?;
        let last: Ipv4Addr = last.trim().parse().map_err(|_| invalid())?;
        if first > last {
            return Err(format!(
                "invalid address range `{text}`: the first address is after the last"
            ));
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// An inclusive range of Proxmox VMIDs, `9100-9199`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmidRange {
    pub first: u32,
    pub last: u32,
}

impl VmidRange {
    pub fn as_range(&self) -> RangeInclusive<u32> {
        self.first..=self.last
    }

    pub fn count(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }
}

impl FromStr for VmidRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("invalid VMID range `{text}`: expected FIRST-LAST, like 9100-9199");
        let (first, last) = text.split_once('-').ok_or_else(invalid)?;
        let first: u32 = first.trim().parse().map_err(|_| invalid())?;
        let last: u32 = last.trim().parse().map_err(|_| invalid())?;
        if first > last {
            return Err(format!(
                "invalid VMID range `{text}`: the first VMID is after the last"
            ));
        }
        if first < VMID_MIN || last > VMID_MAX {
            return Err(format!(
                "invalid VMID range `{text}`: Proxmox VMIDs run from {VMID_MIN} to {VMID_MAX}"
            ));
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for VmidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A SHA-256 certificate fingerprint, as Proxmox shows it
/// (`AB:CD:…`, 32 bytes) or as plain hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl FromStr for Fingerprint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex_digits: String = text.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&hex_digits, &mut bytes).map_err(|_| {
            format!("invalid SHA-256 fingerprint `{text}`: expected 32 hex pairs, like AB:CD:…:EF (as Proxmox shows it)")
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|byte| format!("{byte:02X}")).collect();
        f.write_str(&pairs.join(":"))
    }
}

string_value!(
    Cidr4,
    "cidr4",
    Some(r"^[0-9.]+/[0-9]{1,2}$"),
    "An IPv4 network in CIDR form, like 10.0.0.0/24."
);
string_value!(
    Cidr6,
    "cidr6",
    Some(r"^[0-9a-fA-F:]+/[0-9]{1,3}$"),
    "An IPv6 network in CIDR form, like fd00:10::/64."
);
string_value!(
    MacAddr,
    "mac",
    Some("^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"),
    "A unicast MAC address, like BC:24:11:00:00:01."
);
string_value!(
    Ipv4Range,
    "ipv4-range",
    Some(r"^[0-9.]+\s*-\s*[0-9.]+$"),
    "An inclusive IPv4 range, like 10.0.0.200-10.0.0.220."
);
string_value!(
    VmidRange,
    "vmid-range",
    Some(r"^[0-9]+\s*-\s*[0-9]+$"),
    "An inclusive VMID range, like 9100-9199."
);
string_value!(
    Fingerprint,
    "sha256-fingerprint",
    Some("^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$"),
    "A SHA-256 certificate fingerprint, like AB:CD:…:EF."
);

impl fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_must_be_written_as_networks() {
        assert!("10.0.0.0/24".parse::<Cidr4>().is_ok());
        let error = "10.0.0.7/24".parse::<Cidr4>().unwrap_err();
        assert!(error.contains("did you mean `10.0.0.0/24`"), "{error}");
        assert!("fd00:10::/64".parse::<Cidr6>().is_ok());
    }

    #[test]
    fn macs_are_unicast_hex_pairs() {
        assert_eq!(
            "bc:24:11:00:00:01".parse::<MacAddr>().unwrap().to_string(),
            "BC:24:11:00:00:01"
        );
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().is_err());
        assert!("bc:24:11:00:00".parse::<MacAddr>().is_err());
    }

    #[test]
    fn ranges_are_ordered_and_sized() {
        let range: Ipv4Range = "10.0.0.200-10.0.0.220".parse().unwrap();
        assert_eq!(range.count(), 21);
        assert!("10.0.0.9-10.0.0.1".parse::<Ipv4Range>().is_err());
        let vmids: VmidRange = "9100-9199".parse().unwrap();
        assert_eq!(vmids.count(), 100);
        assert!("50-60".parse::<VmidRange>().is_err());
    }

    #[test]
    fn fingerprints_parse_in_both_forms() {
        let colon = (0..32).map(|_| "ab").collect::<Vec<_>>().join(":");
        let plain = "AB".repeat(32);
        assert_eq!(
            colon.parse::<Fingerprint>().unwrap(),
            plain.parse::<Fingerprint>().unwrap()
        );
        assert!("AB:CD".parse::<Fingerprint>().is_err());
    }
}
