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
//!
//! ```
//! use kiln_cloud_init::{Delivery, Generation, RenderInput, render};
//!
//! let inventory = kiln_inventory::parse("kiln.yaml", r#"
//! cluster: {name: demo}
//! proxmox:
//!   endpoint: https://pve.example.org:8006
//!   auth: {token: env:PVE_TOKEN}
//!   nodes: [pve]
//!   snippets_storage: local
//! network:
//!   ipv4: {cidr: 10.0.0.0/24, gateway: 10.0.0.1}
//!   dns: [10.0.0.1]
//! images: {debian-12: {golden: {recipe: debian-12}}}
//! templates: {debian-12: {image: debian-12, vmids: {pve: 9000}}}
//! defaults: {template: debian-12}
//! nodes:
//!   - {name: web1, role: host, pve_node: pve, ip: 10.0.0.11, mac: "BC:24:11:00:00:01"}
//! "#).map_err(|error| error.render(false))?;
//! let input = RenderInput {
//!     authorized_keys: vec![
//!         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/Wqd8fBeliUlUSfo1SQDji2PxCu7lYS6bB7UYNNO70 kiln@demo".parse()?,
//!     ],
//!     generation: Generation::from(1),
//!     ..RenderInput::default()
//! };
//! let seed = render(&inventory, "web1", &input)?;
//! assert!(seed.documents.user_data.starts_with("#cloud-config\n"));
//! assert!(seed.documents.meta_data.contains("instance-id: kiln-demo-web1-1"));
//! assert_eq!(seed.proxmox.delivery, Delivery::Cicustom);
//! assert!(seed.warnings.is_empty());
//! let iso: Vec<u8> = kiln_cloud_init::build_cidata_iso(&seed.documents)?;
//! assert!(!iso.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
