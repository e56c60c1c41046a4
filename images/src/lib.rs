//! kiln-images: the image catalog and the offline golden-image builder.
//!
//! [`build`] turns a [`Recipe`] (today `debian-12`) into a BIOS-bootable
//! qcow2 disk from Debian packages alone: debootstrap into a work dir, an
//! msdos-partitioned raw disk filled by `mkfs.ext4 -d` (no mounts), grub's
//! `boot.img` and a `core.img` made by `grub-mkimage`, then
//! `qemu-img convert`. Images are cached by recipe hash in a [`Cache`];
//! a second build of the same recipe is a cache hit that does nothing.
//!
//! [`catalog`] names the distributions' generic cloud images and how to
//! verify them; downloading them is not implemented yet.

mod build;
mod cache;
pub mod catalog;
mod error;
mod guest;
mod layout;
mod recipe;
mod tools;

pub use build::{Stage, build};
pub use cache::{Cache, CachedImage};
pub use error::BuildError;
pub use layout::{DiskLayout, MbrPartition, read_mbr};
pub use recipe::{BUILDER_VERSION, Recipe};
