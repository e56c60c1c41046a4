//! What a golden image is made of, and the hash that names it in the cache.

use kiln_inventory::model::GoldenRecipe;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::BuildError;

/// Bumped whenever the builder makes a different disk from the same
/// recipe (guest configuration, layout, grub modules): a new version is a
/// new hash, so a stale cached image is never reused.
pub const BUILDER_VERSION: u32 = 1;

const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Packages of the `debian-12` golden image, on top of debootstrap's
/// `minbase`. The boot loader is not among them: grub's images come from
/// the host's `grub-pc-bin` and are written outside the filesystem.
const DEBIAN_12_PACKAGES: &[&str] = &[
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "e2fsprogs",
    "cloud-init",
    "cloud-guest-utils",
    "fdisk",
    "python3-cffi-backend",
    "openssh-server",
    "ifupdown",
    "isc-dhcp-client",
    "netbase",
    "iproute2",
    "sudo",
    "qemu-guest-agent",
    "ca-certificates",
    "dbus",
    "locales",
    // TrueNAS storage: the guest's own kernel is the iSCSI initiator and NFS
    // client (lab guests have no internet to fetch them at apply time).
    "open-iscsi",
    "nfs-common",
];

/// A reproducible golden-image recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The name used on the command line and in the cache, e.g. `debian-12`.
    pub name: String,
    /// The Debian suite debootstrap installs.
    pub suite: String,
    pub mirror: String,
    /// Sorted and without duplicates.
    pub packages: Vec<String>,
    /// The disk's virtual size in bytes.
    pub disk_bytes: u64,
}

impl Recipe {
    pub fn from_golden(recipe: GoldenRecipe) -> Self {
        match recipe {
            GoldenRecipe::Debian12 => Self::new(
                "debian-12",
                "bookworm",
                DEBIAN_MIRROR,
                DEBIAN_12_PACKAGES,
                2 * 1024 * 1024 * 1024,
            ),
        }
    }

    /// The recipe named as in the inventory (`debian-12`).
    pub fn named(name: &str) -> Result<Self, BuildError> {
        match name {
            "debian-12" => Ok(Self::from_golden(GoldenRecipe::Debian12)),
            other => Err(BuildError::UnknownRecipe(other.to_owned())),
        }
    }

    pub fn new(name: &str, suite: &str, mirror: &str, packages: &[&str], disk_bytes: u64) -> Self {
        let mut packages: Vec<String> = packages.iter().map(|p| (*p).to_owned()).collect();
        packages.sort();
        packages.dedup();
        Self {
            name: name.to_owned(),
            suite: suite.to_owned(),
            mirror: mirror.to_owned(),
            packages,
            disk_bytes,
        }
    }

    /// SHA-256 (hex) over the builder version, suite, mirror, package list
    /// and disk size. The package order does not matter.
    pub fn hash(&self) -> String {
        let canonical = format!(
            "kiln-images builder {BUILDER_VERSION}\nsuite {}\nmirror {}\npackages {}\ndisk {}\n",
            self.suite,
            self.mirror,
            self.packages.join(","),
            self.disk_bytes
        );
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The cache entry's directory name: `<name>-<first 16 hex digits>`.
    pub fn cache_key(&self) -> String {
        format!("{}-{}", self.name, &self.hash()[..16])
    }

    /// The root filesystem's UUID, derived from the hash so the same
    /// recipe always gives the same `fstab` and `grub.cfg`.
    pub fn filesystem_uuid(&self) -> uuid::Uuid {
        let digest = Sha256::digest(format!("{} filesystem", self.hash()).as_bytes());
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_package_order_and_duplicates() {
        let a = Recipe::new("x", "bookworm", DEBIAN_MIRROR, &["b", "a"], 1024);
        let b = Recipe::new("x", "bookworm", DEBIAN_MIRROR, &["a", "b", "a"], 1024);
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn hash_covers_packages_suite_and_disk_size() {
        let base = Recipe::new("x", "bookworm", DEBIAN_MIRROR, &["a"], 1024);
        let more = Recipe::new("x", "bookworm", DEBIAN_MIRROR, &["a", "b"], 1024);
        let suite = Recipe::new("x", "trixie", DEBIAN_MIRROR, &["a"], 1024);
        let disk = Recipe::new("x", "bookworm", DEBIAN_MIRROR, &["a"], 2048);
        let hashes = [base.hash(), more.hash(), suite.hash(), disk.hash()];
        for (i, left) in hashes.iter().enumerate() {
            for right in &hashes[i + 1..] {
                assert_ne!(left, right);
            }
        }
    }

    #[test]
    fn debian_12_is_stable_and_named() -> Result<(), BuildError> {
        let recipe = Recipe::named("debian-12")?;
        assert_eq!(recipe, Recipe::from_golden(GoldenRecipe::Debian12));
        assert_eq!(recipe.hash().len(), 64);
        assert!(recipe.cache_key().starts_with("debian-12-"));
        assert_eq!(recipe.cache_key().len(), "debian-12-".len() + 16);
        assert_eq!(recipe.filesystem_uuid(), recipe.filesystem_uuid());
        assert!(recipe.packages.iter().any(|p| p == "qemu-guest-agent"));
        assert!(matches!(
            Recipe::named("debian-99"),
            Err(BuildError::UnknownRecipe(_))
        ));
        Ok(())
    }
}
