use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The smallest and largest VMID Proxmox accepts for a guest.
pub const VMID_MIN: u32 = 100;
pub const VMID_MAX: u32 = 999_999_999;

/// A Proxmox VM ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vmid(u32);

impl Vmid {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vmid {
    type Error = String;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        if (VMID_MIN..=VMID_MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "VMID {value} is out of range: Proxmox VMIDs run from {VMID_MIN} to {VMID_MAX}"
            ))
        }
    }
}

impl From<Vmid> for u32 {
    fn from(vmid: Vmid) -> Self {
        vmid.0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl JsonSchema for Vmid {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Vmid".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "description": "A Proxmox VM ID.",
            "minimum": VMID_MIN,
            "maximum": VMID_MAX,
        })
    }
}
