//! The NoCloud seed as an ISO 9660 image labelled `cidata`, the way
//! Proxmox builds its cloud-init drive (`genisoimage -R -V cidata`).
//!
//! Plain ISO 9660 names are upper-case 8.3 (`USER_DAT.;1`), which cloud-init
//! would not find, so the image carries Rock Ridge (what Linux reads first)
//! and Joliet names `user-data`, `meta-data` and `network-config`.

use std::io::Cursor;
use std::path::Path;

use hadris_iso::joliet::JolietLevel;
use hadris_iso::read::PathSeparator;
use hadris_iso::rrip::RripOptions;
use hadris_iso::sync::write::options::{BaseIsoLevel, CreationFeatures, IsoFormatOptions};
use hadris_iso::sync::write::{InputEntry, InputMetadata, InputTree, IsoImageWriter};

use crate::error::IsoError;
use crate::seed::Documents;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const VOLUME_ID: &str = "cidata";

/// Read-only for everyone: the guest only reads its seed.
const FILE_MODE: u32 = 0o100_444;

/// The ISO image holding `documents`, in memory (about 60 KiB for a
/// typical seed).
pub fn build_cidata_iso(documents: &Documents) -> Result<Vec<u8>, IsoError> {
    let files = documents
        .files()
        .map(|(name, text)| (name, text.as_bytes()));
    build_cidata_iso_from(&files)
}

/// A `cidata` image of any flat set of files, e.g. with a `vendor-data`
/// beside the three documents (the lab regenerates seeds like PVE does).
pub fn build_cidata_iso_from(files: &[(&str, &[u8])]) -> Result<Vec<u8>, IsoError> {
    let mut names: Vec<&str> = Vec::with_capacity(files.len());
    for (name, _) in files {
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(IsoError::Build(format!(
                "`{name}` is not a plain file name"
            )));
        }
        if names.contains(name) {
            return Err(IsoError::Build(format!("`{name}` is given twice")));
        }
        names.push(name);
    }
    let entries = files
        .iter()
        .map(|(name, bytes)| {
            let mut entry = InputEntry::file(*name, bytes.to_vec());
            entry.metadata = InputMetadata {
                mode: Some(FILE_MODE),
                uid: Some(0),
                gid: Some(0),
                ..entry.metadata
            };
            entry
        })
        .collect();
    let tree = InputTree::new(PathSeparator::ForwardSlash, entries);
    let options = IsoFormatOptions {
        volume_name: VOLUME_ID.to_owned(),
        system_id: None,
        volume_set_id: None,
        publisher_id: None,
        preparer_id: None,
        application_id: Some("kiln".to_owned()),
        sector_size: 2048,
        features: CreationFeatures {
            filenames: BaseIsoLevel::Level1 {
                supports_lowercase: false,
                supports_rrip: true,
            },
            joliet: Some(JolietLevel::Level3),
            rock_ridge: Some(RripOptions::default()),
            ..CreationFeatures::default()
        },
        path_separator: PathSeparator::ForwardSlash,
        // Keep the lower-case volume id as given: cloud-init matches the
        // label `cidata` (blkid compares it case-insensitively, PVE writes
        // it lower-case too).
        strict_charset: false,
    };
    let image = IsoImageWriter::create(Cursor::new(Vec::new()), tree, options)
        .map_err(|error| IsoError::Build(error.to_string()))?;
    Ok(image.into_inner())
}

/// Builds the image and writes it to `path` (replacing any file there).
pub fn write_cidata_iso(documents: &Documents, path: &Path) -> Result<(), IsoError> {
    let image = build_cidata_iso(documents)?;
    std::fs::write(path, image).map_err(|source| IsoError::Write {
        path: path.display().to_string(),
        source,
    })
}
