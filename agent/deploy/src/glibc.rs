//! Will the agent binary run on the host? A dynamically linked binary needs
//! the newest `GLIBC_x.y` symbol version it references (its ELF
//! `.gnu.version_r`); the host has what `getconf GNU_LIBC_VERSION` prints.
//! A static binary (no glibc versions) runs anywhere.

use std::fmt;

use object::read::elf::FileHeader;
use object::{Endianness, FileKind, elf};

/// A glibc release, `2.34` or `2.2.5`, compared part by part.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(Vec<u32>);

impl GlibcVersion {
    /// `2.36` → 2.36; anything else → `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Option<Vec<u32>> = text.split('.').map(|part| part.parse().ok()).collect();
        parts.filter(|parts| parts.len() >= 2).map(|mut parts| {
            while parts.len() > 2 && parts.last() == Some(&0) {
                parts.pop();
            }
            Self(parts)
        })
    }

    /// A symbol version such as `GLIBC_2.34`; `GLIBC_PRIVATE` and other
    /// libraries' versions are not releases → `None`.
    pub fn from_symbol_version(name: &str) -> Option<Self> {
        name.strip_prefix("GLIBC_").and_then(Self::parse)
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// Why the binary cannot run on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlibcProblem {
    #[error("the agent binary needs glibc {needed} or newer, but the host has glibc {found}")]
    TooOld {
        needed: GlibcVersion,
        found: GlibcVersion,
    },
    #[error(
        "the agent binary needs glibc {needed}, but the host reports no glibc \
         (`getconf GNU_LIBC_VERSION` printed {reported:?})"
    )]
    NoGlibc {
        needed: GlibcVersion,
        reported: String,
    },
}

/// The check itself: `needed` is the binary's newest `GLIBC_x.y` (none for
/// a static binary), `host` what `getconf GNU_LIBC_VERSION` printed
/// (`glibc 2.36`), or `None` when it failed.
pub fn check(needed: Option<&GlibcVersion>, host: Option<&str>) -> Result<(), GlibcProblem> {
    let Some(needed) = needed else {
        return Ok(());
    };
    let reported = host.unwrap_or_default().trim();
    let found = reported
        .strip_prefix("glibc ")
        .and_then(|version| GlibcVersion::parse(version.trim()));
    match found {
        Some(found) if found >= *needed => Ok(()),
        Some(found) => Err(GlibcProblem::TooOld {
            needed: needed.clone(),
            found,
        }),
        None => Err(GlibcProblem::NoGlibc {
            needed: needed.clone(),
            reported: reported.to_owned(),
        }),
    }
}

/// The newest `GLIBC_x.y` the ELF binary `data` references, `None` when it
/// references none (static, or musl).
pub fn needed_by(data: &[u8]) -> Result<Option<GlibcVersion>, String> {
    match FileKind::parse(data).map_err(|error| error.to_string())? {
        FileKind::Elf64 => needed_by_elf::<elf::FileHeader64<Endianness>>(data),
        FileKind::Elf32 => needed_by_elf::<elf::FileHeader32<Endianness>>(data),
        other => Err(format!("not an ELF binary ({other:?})")),
    }
}

fn needed_by_elf<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Option<GlibcVersion>, String> {
    let text = |error: object::read::Error| error.to_string();
    let header = Elf::parse(data).map_err(text)?;
    let endian = header.endian().map_err(text)?;
    let sections = header.sections(endian, data).map_err(text)?;
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data).map_err(text)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, data, link).map_err(text)?;
    let mut newest = None;
    while let Some((_, mut versions)) = needs.next().map_err(text)? {
        while let Some(version) = versions.next().map_err(text)? {
            let name = version.name(endian, strings).map_err(text)?;
            let parsed = std::str::from_utf8(name)
                .ok()
                .and_then(GlibcVersion::from_symbol_version);
            newest = newest.max(parsed);
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> GlibcVersion {
        GlibcVersion::parse(text).unwrap()
    }

    #[test]
    fn versions_compare_numerically_not_as_text() {
        assert!(version("2.10") > version("2.9"));
        assert!(version("2.2.5") > version("2.2"));
        assert_eq!(version("2.34.0"), version("2.34"));
        assert_eq!(
            GlibcVersion::from_symbol_version("GLIBC_2.2.5").unwrap(),
            version("2.2.5")
        );
        assert_eq!(GlibcVersion::from_symbol_version("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::from_symbol_version("GCC_3.0"), None);
        assert_eq!(GlibcVersion::parse("2"), None);
        assert_eq!(version("2.36").to_string(), "2.36");
    }

    #[test]
    fn a_new_enough_host_passes_and_an_older_one_is_named() {
        assert_eq!(check(Some(&version("2.34")), Some("glibc 2.36\n")), Ok(()));
        assert_eq!(check(Some(&version("2.36")), Some("glibc 2.36")), Ok(()));
        let problem = check(Some(&version("2.39")), Some("glibc 2.36\n")).unwrap_err();
        assert_eq!(
            problem,
            GlibcProblem::TooOld {
                needed: version("2.39"),
                found: version("2.36")
            }
        );
        assert_eq!(
            problem.to_string(),
            "the agent binary needs glibc 2.39 or newer, but the host has glibc 2.36"
        );
    }

    #[test]
    fn a_static_binary_runs_anywhere_and_a_host_without_glibc_is_refused() {
        assert_eq!(check(None, None), Ok(()));
        assert_eq!(check(None, Some("garbage")), Ok(()));
        let problem = check(Some(&version("2.17")), None).unwrap_err();
        assert!(matches!(problem, GlibcProblem::NoGlibc { .. }));
        let musl = check(Some(&version("2.17")), Some("musl")).unwrap_err();
        assert!(musl.to_string().contains("\"musl\""), "{musl}");
    }

    #[test]
    fn the_running_test_binary_needs_some_glibc_2() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needed = needed_by(&me).unwrap().expect("linked against glibc");
        assert!(
            needed >= version("2.2.5") && needed < version("3.0"),
            "{needed}"
        );
    }

    #[test]
    fn not_an_elf_is_an_error() {
        assert!(needed_by(b"#!/bin/sh\necho hi\n").is_err());
    }
}
