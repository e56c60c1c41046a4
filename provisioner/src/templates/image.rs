//! Where a template's image comes from, and the checksum that identifies
//! it: the sha256 of a golden image kiln built (it uploads that file), or
//! the distribution's published checksum of a cloud image (Proxmox
//! downloads that file itself and checks it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_images::{Cache, Recipe};
use kiln_inventory::Inventory;
use kiln_inventory::model::Image;
use sha2::{Digest, Sha256};

use kiln_proxmox::Checksum;

/// How long fetching a published checksum file may take.
const SUMS_TIMEOUT: Duration = Duration::from_secs(60);
/// A checksum file larger than this is not one.
const SUMS_MAX_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOrigin {
    /// A golden image in kiln's cache, uploaded from this file.
    Golden { recipe: String, path: PathBuf },
    /// A cloud image Proxmox downloads itself (`download-url`).
    Url { url: String },
}

/// An image, ready to be put on a PVE node's `import` storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The name in the inventory's `images:`.
    pub name: String,
    pub origin: ImageOrigin,
    /// What Proxmox verifies after the transfer, and what the template's
    /// marker records.
    pub checksum: Checksum,
    /// The file name on the storage: named by the checksum, so a file of
    /// that name is this image and another image never overwrites it.
    pub filename: String,
}

impl ResolvedImage {
    /// `sha256:<hex>`: the image's identity in a template's marker.
    pub fn identity(&self) -> String {
        format!("{}:{}", self.checksum.algorithm, self.checksum.value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image `{image}` is not in the inventory's `images`")]
    Unknown { image: String },
    #[error(
        "image `{image}`: the golden image of recipe `{recipe}` is not built on this machine (cache {cache}): run `kiln image build {recipe}` first"
    )]
    NotBuilt {
        image: String,
        recipe: String,
        cache: String,
    },
    #[error("image `{image}`: cannot read {path}: {reason}")]
    Unreadable {
        image: String,
        path: String,
        reason: String,
    },
    #[error(
        "image `{image}`: {url} does not end in .qcow2, .raw, .vmdk or .img, which Proxmox can import (compressed images cannot be imported)"
    )]
    NotImportable { image: String, url: String },
    #[error("image `{image}`: cannot fetch the checksum file {url}: {reason}")]
    Sums {
        image: String,
        url: String,
        reason: String,
    },
    #[error("image `{image}`: the checksum file {url} lists no sha256 or sha512 for `{file}`")]
    NotInSums {
        image: String,
        url: String,
        file: String,
    },
    #[error("image `{image}`: Talos images are not made into templates by `kiln image ensure` yet")]
    Talos { image: String },
}

/// Resolves the named images of the inventory. Golden images must be in
/// `cache` already: building one needs root and minutes, which a command
/// holding the cluster's run lock should not hide (`kiln image build` does
/// it, and CI caches it on its own).
pub async fn resolve_images(
    inventory: &Inventory,
    names: &BTreeSet<String>,
    cache: &Cache,
) -> Result<BTreeMap<String, ResolvedImage>, Vec<ImageError>> {
    let mut resolved = BTreeMap::new();
    let mut errors = Vec::new();
    for name in names {
        let found = inventory
            .images
            .iter()
            .find(|(label, _)| label.as_str() == name);
        let result = match found {
            None => Err(ImageError::Unknown {
                image: name.clone(),
            }),
            Some((_, image)) => resolve(name, image, cache).await,
        };
        match result {
            Ok(image) => {
                resolved.insert(name.clone(), image);
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

async fn resolve(name: &str, image: &Image, cache: &Cache) -> Result<ResolvedImage, ImageError> {
    if let Some(golden) = &image.golden {
        let recipe = Recipe::from_golden(golden.recipe);
        let cached = cache.lookup(&recipe).ok_or_else(|| ImageError::NotBuilt {
            image: name.to_owned(),
            recipe: recipe.name.clone(),
            cache: cache.dir.display().to_string(),
        })?;
        let digest = sha256_of(name, cached.path.clone()).await?;
        return Ok(ResolvedImage {
            name: name.to_owned(),
            filename: format!("{name}-{}.qcow2", &digest[..16]),
            checksum: Checksum::sha256(digest),
            origin: ImageOrigin::Golden {
                recipe: recipe.name,
                path: cached.path,
            },
        });
    }
    if let Some(url) = &image.url {
        let url = url.as_str().to_owned();
        let extension = import_extension(&url).ok_or_else(|| ImageError::NotImportable {
            image: name.to_owned(),
            url: url.clone(),
        })?;
        let checksum = match (&image.checksum, &image.checksum_url) {
            (Some(pinned), _) => Checksum {
                algorithm: pinned.algorithm.as_str().to_owned(),
                value: pinned.hex.to_ascii_lowercase(),
            },
            (None, Some(sums_url)) => published_checksum(name, &url, sums_url.as_str()).await?,
            // The inventory's checks require one of the two.
            (None, None) => {
                return Err(ImageError::NotInSums {
                    image: name.to_owned(),
                    url: url.clone(),
                    file: file_name(&url).to_owned(),
                });
            }
        };
        return Ok(ResolvedImage {
            name: name.to_owned(),
            filename: format!("{name}-{}.{extension}", &checksum.value[..16]),
            checksum,
            origin: ImageOrigin::Url { url },
        });
    }
    Err(ImageError::Talos {
        image: name.to_owned(),
    })
}

/// The last path segment of a URL, without query or fragment.
fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// The extension the file gets on an `import` storage, which Proxmox reads
/// its format from. Distributions publish qcow2 cloud images as `.img`
/// (Ubuntu), so `.img` is stored as `.qcow2`.
fn import_extension(url: &str) -> Option<&'static str> {
    let file = file_name(url).to_ascii_lowercase();
    [
        (".qcow2", "qcow2"),
        (".img", "qcow2"),
        (".raw", "raw"),
        (".vmdk", "vmdk"),
    ]
    .into_iter()
    .find_map(|(suffix, extension)| file.ends_with(suffix).then_some(extension))
}

async fn sha256_of(image: &str, path: PathBuf) -> Result<String, ImageError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String| ImageError::Unreadable {
        image: image.to_owned(),
        path: shown.clone(),
        reason,
    };
    tokio::task::spawn_blocking(move || hash_file(&path))
        .await
        .map_err(|error| unreadable(error.to_string()))?
        .map_err(|error| unreadable(error.to_string()))
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The image's line in the distribution's `SHA256SUMS`/`SHA512SUMS`.
async fn published_checksum(
    image: &str,
    url: &str,
    sums_url: &str,
) -> Result<Checksum, ImageError> {
    let failed = |reason: String| ImageError::Sums {
        image: image.to_owned(),
        url: sums_url.to_owned(),
        reason,
    };
    let tls = kiln_tls::Trust::System
        .client_config()
        .map_err(|error| failed(error.to_string()))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(SUMS_TIMEOUT)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let response = http
        .get(sums_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| failed(error.to_string()))?;
    let body = response
        .bytes()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if body.len() > SUMS_MAX_BYTES {
        return Err(failed(format!("{} bytes is too large", body.len())));
    }
    let text = String::from_utf8_lossy(&body);
    digest_in(&text, file_name(url)).ok_or_else(|| ImageError::NotInSums {
        image: image.to_owned(),
        url: sums_url.to_owned(),
        file: file_name(url).to_owned(),
    })
}

/// Finds `file` in a checksum file (`HEX  NAME` or `HEX *NAME` lines); the
/// algorithm follows from the digest's length.
fn digest_in(sums: &str, file: &str) -> Option<Checksum> {
    sums.lines().find_map(|line| {
        let (digest, name) = line.trim().split_once(char::is_whitespace)?;
        let name = name.trim_start().trim_start_matches('*');
        let algorithm = match digest.len() {
            64 => "sha256",
            128 => "sha512",
            _ => return None,
        };
        (name == file && digest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Checksum {
            algorithm: algorithm.to_owned(),
            value: digest.to_ascii_lowercase(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_extensions() {
        assert_eq!(
            import_extension("https://x.org/a/debian-12-genericcloud-amd64.qcow2"),
            Some("qcow2")
        );
        assert_eq!(
            import_extension("https://x.org/noble-server-cloudimg-amd64.img?x=1"),
            Some("qcow2")
        );
        assert_eq!(import_extension("https://x.org/disk.RAW"), Some("raw"));
        assert_eq!(import_extension("https://x.org/disk.raw.xz"), None);
        assert_eq!(import_extension("https://x.org/"), None);
    }

    #[test]
    fn sums_lines_in_both_formats_pick_the_file_and_the_algorithm() {
        let sums = format!(
            "{}  debian-12-genericcloud-amd64.raw\n{} *debian-12-genericcloud-amd64.qcow2\n",
            "1".repeat(128),
            "AB".repeat(32)
        );
        assert_eq!(
            digest_in(&sums, "debian-12-genericcloud-amd64.qcow2"),
            Some(Checksum::sha256("ab".repeat(32)))
        );
        assert_eq!(
            digest_in(&sums, "debian-12-genericcloud-amd64.raw").map(|c| c.algorithm),
            Some("sha512".to_owned())
        );
        assert_eq!(digest_in(&sums, "other.qcow2"), None);
        assert_eq!(digest_in("abc  short.qcow2", "short.qcow2"), None);
    }

    #[test]
    fn file_hash_is_sha256_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
