//! Where golden images are kept: `<cache>/images/<name>-<hash16>/` holding
//! `disk.qcow2` and `image.json`. An entry appears by one rename of a
//! finished directory, so a half-built image is never visible.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{BuildError, Recipe};

pub const DISK_FILE: &str = "disk.qcow2";
pub const MANIFEST_FILE: &str = "image.json";
/// Work dirs of builds in progress (or killed) start with this.
pub const WORK_PREFIX: &str = ".build-";

/// The golden-image cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub dir: PathBuf,
}

/// One cached image, as `image.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    pub name: String,
    pub hash: String,
    pub builder_version: u32,
    pub suite: String,
    pub packages: Vec<String>,
    pub disk_bytes: u64,
    /// The qcow2 file's size on disk.
    pub file_bytes: u64,
    pub path: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$KILN_CACHE_DIR/images`, else `$XDG_CACHE_HOME/kiln/images`, else
    /// `~/.cache/kiln/images`.
    pub fn default_location() -> Result<Self, BuildError> {
        Self::from_env(|name| std::env::var_os(name))
    }

    pub fn from_env(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self, BuildError> {
        let set = |name: &str| {
            var(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = set("KILN_CACHE_DIR") {
            return Ok(Self::new(dir.join("images")));
        }
        if let Some(dir) = set("XDG_CACHE_HOME") {
            return Ok(Self::new(dir.join("kiln/images")));
        }
        set("HOME")
            .map(|home| Self::new(home.join(".cache/kiln/images")))
            .ok_or(BuildError::NoCacheDir)
    }

    pub fn entry_dir(&self, recipe: &Recipe) -> PathBuf {
        self.dir.join(recipe.cache_key())
    }

    /// The cached image of this recipe, if it was built.
    pub fn lookup(&self, recipe: &Recipe) -> Option<CachedImage> {
        read_entry(&self.entry_dir(recipe)).filter(|image| image.hash == recipe.hash())
    }

    /// Every cached image, by name then hash.
    pub fn list(&self) -> Result<Vec<CachedImage>, BuildError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(BuildError::io("list cache", &self.dir)(error)),
        };
        let mut images: Vec<CachedImage> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|entry| read_entry(&entry.path()))
            .collect();
        images.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
        Ok(images)
    }
}

pub fn manifest(recipe: &Recipe, path: &Path, file_bytes: u64) -> CachedImage {
    CachedImage {
        name: recipe.name.clone(),
        hash: recipe.hash(),
        builder_version: crate::BUILDER_VERSION,
        suite: recipe.suite.clone(),
        packages: recipe.packages.clone(),
        disk_bytes: recipe.disk_bytes,
        file_bytes,
        path: path.to_path_buf(),
    }
}

/// An entry's manifest, with `path` and `file_bytes` taken from the disk
/// file actually there (the cache dir may have moved).
fn read_entry(dir: &Path) -> Option<CachedImage> {
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).ok()?;
    let mut image: CachedImage = serde_json::from_str(&text).ok()?;
    let disk = dir.join(DISK_FILE);
    image.file_bytes = std::fs::metadata(&disk).ok()?.len();
    image.path = disk;
    Some(image)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn location_precedence() -> Result<(), BuildError> {
        let all = [
            ("KILN_CACHE_DIR", "/k"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(Cache::from_env(env(&all))?.dir, PathBuf::from("/k/images"));
        assert_eq!(
            Cache::from_env(env(&all[1..]))?.dir,
            PathBuf::from("/x/kiln/images")
        );
        assert_eq!(
            Cache::from_env(env(&all[2..]))?.dir,
            PathBuf::from("/h/.cache/kiln/images")
        );
        assert!(matches!(
            Cache::from_env(env(&[])),
            Err(BuildError::NoCacheDir)
        ));
        Ok(())
    }

    #[test]
    fn lookup_and_list_see_only_finished_entries() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let cache = Cache::new(root.path());
        let recipe = Recipe::named("debian-12")?;
        assert_eq!(cache.lookup(&recipe), None);
        let dir = cache.entry_dir(&recipe);
        assert_eq!(dir, root.path().join(recipe.cache_key()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(DISK_FILE), b"qcow")?;
        assert_eq!(cache.lookup(&recipe), None, "no manifest yet");
        let image = manifest(&recipe, &dir.join(DISK_FILE), 4);
        std::fs::write(dir.join(MANIFEST_FILE), serde_json::to_string(&image)?)?;
        std::fs::create_dir_all(root.path().join(format!("{WORK_PREFIX}x")))?;
        assert_eq!(cache.lookup(&recipe), Some(image.clone()));
        assert_eq!(cache.list()?, vec![image]);
        Ok(())
    }
}
