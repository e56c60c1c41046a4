//! Named distribution cloud images and how to verify them: the checksum
//! file the distribution publishes beside each image. Data only; kiln does
//! not download them yet.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CatalogImage {
    pub name: &'static str,
    pub url: &'static str,
    /// The published `SHA512SUMS`/`SHA256SUMS` beside the image.
    pub checksum_url: &'static str,
    pub algorithm: Algorithm,
}

impl CatalogImage {
    /// The image's file name, as the checksum file lists it.
    pub fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }

    /// The image's digest in a checksum file's text (`HEX  NAME` or
    /// `HEX *NAME` lines), lowercased.
    pub fn digest_in(&self, sums: &str) -> Option<String> {
        let width = match self.algorithm {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        };
        sums.lines().find_map(|line| {
            let (digest, name) = line.split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            (name == self.file_name()
                && digest.len() == width
                && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| digest.to_ascii_lowercase())
        })
    }
}

pub const CATALOG: &[CatalogImage] = &[
    CatalogImage {
        name: "debian-12",
        url: "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
        checksum_url: "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
        algorithm: Algorithm::Sha512,
    },
    CatalogImage {
        name: "debian-13",
        url: "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2",
        checksum_url: "https://cloud.debian.org/images/cloud/trixie/latest/SHA512SUMS",
        algorithm: Algorithm::Sha512,
    },
    CatalogImage {
        name: "ubuntu-24.04",
        url: "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img",
        checksum_url: "https://cloud-images.ubuntu.com/noble/current/SHA256SUMS",
        algorithm: Algorithm::Sha256,
    },
];

pub fn find(name: &str) -> Option<&'static CatalogImage> {
    CATALOG.iter().find(|image| image.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_and_checksum_files_sit_beside_images() {
        for image in CATALOG {
            let dir = &image.url[..image.url.len() - image.file_name().len()];
            assert!(image.checksum_url.starts_with(dir), "{}", image.name);
            assert!(image.url.starts_with("https://"));
        }
        assert_eq!(
            find("ubuntu-24.04").map(|i| i.algorithm),
            Some(Algorithm::Sha256)
        );
        assert_eq!(find("debian-11"), None);
    }

    #[test]
    fn digest_lines_in_both_formats() {
        let ubuntu = find("ubuntu-24.04").map(|i| {
            i.digest_in(&format!(
                "{} *noble-server-cloudimg-amd64.img\n",
                "AB".repeat(32)
            ))
        });
        assert_eq!(ubuntu, Some(Some("ab".repeat(32))));
        let debian = find("debian-12").map(|i| {
            i.digest_in(&format!(
                "{}  debian-12-genericcloud-amd64.raw\n{}  debian-12-genericcloud-amd64.qcow2\n",
                "1".repeat(128),
                "2".repeat(128)
            ))
        });
        assert_eq!(debian, Some(Some("2".repeat(128))));
        let short =
            find("debian-12").and_then(|i| i.digest_in("abc  debian-12-genericcloud-amd64.qcow2"));
        assert_eq!(short, None);
    }
}
