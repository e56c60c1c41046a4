//! kiln-cloud-init: what a kiln VM is told on its first boot.
//!
//! [`render`] turns one node of an inventory, plus what kiln knows only at
//! run time ([`RenderInput`]: keys, the instance generation, the MAC
//! Proxmox assigned, extra files and commands), into a [`NodeSeed`]: the
//! NoCloud `user-data`, `meta-data` and `network-config` as typed structs
//! and as text, and the Proxmox VM config keys that deliver them — PVE's
//! native `ci*` keys, or `cicustom` snippets when the inventory names a
//! snippets storage. [`build_cidata_iso`] packs the documents into a
//! `cidata` seed ISO.
//!
//! Nothing here does I/O except [`write_cidata_iso`].

mod error;
mod input;
mod iso;
mod meta_data;
mod network;
mod proxmox;
mod seed;
mod user_data;
mod yaml;

#[cfg(test)]
mod testing;

pub use error::{InputError, IsoError, RenderError};
pub use input::{Command, Generation, HostKeyPair, Package, RenderInput, SshPublicKey, WriteFile};
pub use iso::{VOLUME_ID, build_cidata_iso, build_cidata_iso_from, write_cidata_iso};
pub use meta_data::{MetaData, instance_id};
pub use network::{Ethernet, INTERFACE, Match, Nameservers, NetworkConfig};
pub use proxmox::{
    Delivery, ProxmoxConfig, PveKey, Snippet, SnippetKind, encode_sshkeys, ipconfig0,
    snippet_file_name,
};
pub use seed::{Documents, META_DATA, NETWORK_CONFIG, NodeSeed, USER_DATA, render};
pub use user_data::{CLOUD_CONFIG_HEADER, CloudConfig, FileEntry, HostKeys, User};
