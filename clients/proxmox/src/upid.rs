//! PVE task identifiers (`UPID:node:pid:pstart:starttime:type:id:user:`).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// The decode regex from pve-common `UPID.pm`, verbatim (notes §3).
static UPID_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$",
    )
    .ok()
});

/// A parsed UPID. Polling must go to [`Upid::node`], the node that runs the
/// task, not the node the request was sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u32,
    pub task_type: String,
    pub id: String,
    /// `user@realm` or `user@realm!tokenid`.
    pub user: String,
}

impl Upid {
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// A text that is not a UPID; the text is kept for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UPID {0:?}")]
pub struct InvalidUpid(pub String);

impl FromStr for Upid {
    type Err = InvalidUpid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidUpid(s.to_owned());
        let re = UPID_RE.as_ref().ok_or_else(invalid)?;
        let caps = re.captures(s).ok_or_else(invalid)?;
        let group = |i: usize| caps.get(i).map(|m| m.as_str()).unwrap_or_default();
        Ok(Upid {
            raw: s.to_owned(),
            node: group(1).to_owned(),
            pid: u32::from_str_radix(group(3), 16).map_err(|_| invalid())?,
            pstart: u64::from_str_radix(group(4), 16).map_err(|_| invalid())?,
            starttime: u32::from_str_radix(group(5), 16).map_err(|_| invalid())?,
            task_type: group(6).to_owned(),
            id: group(7).to_owned(),
            user: group(8).to_owned(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_upid() {
        let u: Upid = "UPID:pve-2:0003A1B2:0A1B2C3D4:65A1B2C3:qmclone:9000:kiln@pve!prov:"
            .parse()
            .unwrap();
        assert_eq!(u.node, "pve-2");
        assert_eq!(u.pid, 0x0003_A1B2);
        assert_eq!(u.pstart, 0x0_A1B2_C3D4);
        assert_eq!(u.task_type, "qmclone");
        assert_eq!(u.id, "9000");
        assert_eq!(u.user, "kiln@pve!prov");
        assert_eq!(
            u.to_string(),
            "UPID:pve-2:0003A1B2:0A1B2C3D4:65A1B2C3:qmclone:9000:kiln@pve!prov:"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPID:pve1:0003A1B2:0A1B2C3D:65A1B2C3:qmclone:9000:root@pam",
            "UPID:-pve:0003A1B2:0A1B2C3D:65A1B2C3:qmclone:9000:root@pam:",
            "UPID:pve1:3A1B2:0A1B2C3D:65A1B2C3:qmclone:9000:root@pam:",
            "upid:pve1:0003A1B2:0A1B2C3D:65A1B2C3:qmclone:9000:root@pam:",
            "UPID:pve1:0003A1B2:0A1B2C3D:65A1B2C3:qm/clone:9000:root@pam:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "accepted {bad:?}");
        }
    }
}
