//! The cache of obtained peers: `~/.cache/kiln/peers/<name>/<version>/`, a
//! binary and the `manifest.json` that says where it came from.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::pins::Pin;

/// Where a cached peer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Release,
    ModuleProxy,
}

/// `manifest.json` beside each cached binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub source: Source,
    /// `module@module_version` the binary was built from (or corresponds to,
    /// for a release).
    pub module: String,
    /// Dependencies built at another version than the module requires,
    /// because the proxy refused the required one (`path@version`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitutes: Vec<String>,
    /// Of the binary as cached.
    pub sha256: String,
    /// RFC 3339, UTC.
    pub built_at: String,
    /// Wall time of the download or the build, all steps together.
    pub build_seconds: f64,
}

/// Whether the cache already holds a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheCheck {
    Cached,
    Missing,
    /// There is something, but it is not the pinned peer intact.
    Stale(String),
}

/// Decides from the manifest and the digest of the cached binary (`None`
/// when either file is absent) whether the pinned peer is cached.
pub fn check_cache(
    pin: &Pin,
    manifest: Option<&Manifest>,
    binary_sha256: Option<&str>,
) -> CacheCheck {
    let Some(manifest) = manifest else {
        return CacheCheck::Missing;
    };
    if manifest.name != pin.name || manifest.version != pin.version {
        return CacheCheck::Stale(format!(
            "the manifest is for {} {}",
            manifest.name, manifest.version
        ));
    }
    if manifest.source == Source::ModuleProxy && manifest.module != pin.module_ref() {
        return CacheCheck::Stale(format!(
            "built from {}, now pinned to {}",
            manifest.module,
            pin.module_ref()
        ));
    }
    if manifest.source == Source::ModuleProxy && manifest.substitutes != pin.substitutes {
        return CacheCheck::Stale(format!(
            "built with the substitutes {:?}, now pinned {:?}",
            manifest.substitutes, pin.substitutes
        ));
    }
    match binary_sha256 {
        None => CacheCheck::Stale("the binary is missing".to_owned()),
        Some(digest) if digest != manifest.sha256 => CacheCheck::Stale(format!(
            "the binary's sha256 is {digest}, the manifest says {}",
            manifest.sha256
        )),
        Some(_) => CacheCheck::Cached,
    }
}

/// Seconds since the Unix epoch as RFC 3339 in UTC (`2026-12-02T14:05:09Z`).
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `$KILN_CACHE_DIR/peers`, else `$XDG_CACHE_HOME/kiln/peers`, else
/// `~/.cache/kiln/peers` (the same order as the image cache's).
pub fn cache_root(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |name: &str| {
        var(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set("KILN_CACHE_DIR") {
        return Ok(dir.join("peers"));
    }
    if let Some(dir) = set("XDG_CACHE_HOME") {
        return Ok(dir.join("kiln/peers"));
    }
    set("HOME")
        .map(|home| home.join(".cache/kiln/peers"))
        .context("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")
}

pub(super) fn read_manifest(path: &Path) -> anyhow::Result<Option<Manifest>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub(super) fn sha256_of_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::super::pins::pin_named;
    use super::*;
    fn manifest_for(pin: &Pin, sha256: &str) -> Manifest {
        Manifest {
            name: pin.name.clone(),
            version: pin.version.clone(),
            source: Source::ModuleProxy,
            module: pin.module_ref(),
            substitutes: pin.substitutes.clone(),
            sha256: sha256.to_owned(),
            built_at: "2026-12-02T14:00:00Z".to_owned(),
            build_seconds: 12.5,
        }
    }

    #[test]
    fn a_binary_matching_its_manifest_is_cached() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        assert_eq!(
            check_cache(&pin, Some(&manifest), Some("aa")),
            CacheCheck::Cached
        );
    }

    #[test]
    fn no_manifest_means_missing_whatever_the_binary() {
        let pin = pin_named("tool");
        assert_eq!(check_cache(&pin, None, Some("aa")), CacheCheck::Missing);
        assert_eq!(check_cache(&pin, None, None), CacheCheck::Missing);
    }

    #[test]
    fn a_changed_or_missing_binary_or_a_new_pin_is_stale() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        assert!(matches!(
            check_cache(&pin, Some(&manifest), Some("bb")),
            CacheCheck::Stale(why) if why.contains("bb")
        ));
        assert!(matches!(
            check_cache(&pin, Some(&manifest), None),
            CacheCheck::Stale(why) if why.contains("missing")
        ));
        let mut repinned = pin.clone();
        repinned.module_version = "v1.0.1".to_owned();
        assert!(matches!(
            check_cache(&repinned, Some(&manifest), Some("aa")),
            CacheCheck::Stale(why) if why.contains("v1.0.1")
        ));
        let mut substituted = pin.clone();
        substituted.substitutes = vec!["example.com/dep@v0.1.0".to_owned()];
        assert!(matches!(
            check_cache(&substituted, Some(&manifest), Some("aa")),
            CacheCheck::Stale(why) if why.contains("substitutes")
        ));
        let other = manifest_for(&pin_named("other"), "aa");
        assert!(matches!(
            check_cache(&pin, Some(&other), Some("aa")),
            CacheCheck::Stale(_)
        ));
    }

    #[test]
    fn a_release_is_cached_whatever_module_it_names() {
        let pin = pin_named("tool");
        let mut manifest = manifest_for(&pin, "aa");
        manifest.source = Source::Release;
        manifest.module = String::new();
        assert_eq!(
            check_cache(&pin, Some(&manifest), Some("aa")),
            CacheCheck::Cached
        );
    }

    #[test]
    fn the_manifest_reads_back_with_its_source_spelled_as_documented() {
        let pin = pin_named("tool");
        let manifest = manifest_for(&pin, "aa");
        let json = serde_json::to_string(&manifest).expect("serialize");
        assert!(json.contains("\"source\":\"module-proxy\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Manifest>(&json).expect("parse"),
            manifest
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_796_220_309), "2026-12-02T14:05:09Z");
    }

    #[test]
    fn the_cache_follows_the_image_caches_order() {
        let from = |pairs: &'static [(&'static str, &'static str)]| {
            cache_root(move |name| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            })
            .expect("a cache root")
        };
        assert_eq!(
            from(&[("KILN_CACHE_DIR", "/k"), ("HOME", "/h")]),
            PathBuf::from("/k/peers")
        );
        assert_eq!(
            from(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            PathBuf::from("/x/kiln/peers")
        );
        assert_eq!(
            from(&[("HOME", "/h")]),
            PathBuf::from("/h/.cache/kiln/peers")
        );
        assert!(cache_root(|_| None).is_err());
    }
}
