use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Checksum, HttpUrl, Label, StorageId, Version, Vmid};

/// Where an image comes from: exactly one of `url`, `golden` or `talos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// A cloud image to download (qcow2 or raw), e.g. a Debian generic cloud image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<HttpUrl>,
    /// The image's checksum, pinned here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// Or a SHA256SUMS/SHA512SUMS file published beside the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_url: Option<HttpUrl>,
    /// A golden image kiln builds offline from distribution packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<GoldenImage>,
    /// A Talos image from the Image Factory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talos: Option<TalosImage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoldenImage {
    pub recipe: GoldenRecipe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GoldenRecipe {
    #[serde(rename = "debian-12")]
    Debian12,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TalosImage {
    /// The Image Factory schematic ID (64 hex digits).
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub schematic: String,
    pub version: Version,
}

/// A VM template on Proxmox, made from an image. Proxmox cannot clone a
/// template on local storage to another PVE node, so a template has one copy
/// per PVE node, each with its own VMID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The image this template is made from.
    pub image: Label,
    /// The VMID of this template's copy on each PVE node, e.g. `{pve1: 9000, pve2: 9001}`.
    pub vmids: BTreeMap<Label, Vmid>,
    /// The storage the template's disk is on. Default: `proxmox.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageId>,
}
