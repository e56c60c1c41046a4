//! The `cidata` seed ISO, read back three ways: by the ISO library itself,
//! by `isoinfo` (Debian `genisoimage`), which shows the Rock Ridge and
//! Joliet names Linux mounts, and by `blkid`, which is how cloud-init's
//! NoCloud datasource finds the drive (`LABEL=cidata`, `TYPE=iso9660`).

mod common;

use std::io::Cursor;
use std::process::Command;

use hadris_iso::sync::read::IsoImage;
use kiln_cloud_init::{build_cidata_iso, write_cidata_iso};

fn seed() -> kiln_cloud_init::NodeSeed {
    let (_, inventory) = common::examples()
        .into_iter()
        .find(|(stem, _)| stem == "homelab-k3s")
        .expect("example");
    kiln_cloud_init::render(&inventory, "cp1", &common::full_input()).expect("render")
}

fn run(program: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().expect("run");
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_library_reads_back_every_file_byte_for_byte() {
    let seed = seed();
    let image = build_cidata_iso(&seed.documents).expect("iso");
    let iso = IsoImage::open(Cursor::new(image)).expect("open");
    for (name, text) in seed.documents.files() {
        let entry = iso
            .find_path(name)
            .expect("lookup")
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(
            iso.read_file(&entry).expect("read"),
            text.as_bytes(),
            "{name}"
        );
    }
}

#[test]
fn isoinfo_sees_volume_cidata_and_the_nocloud_names() {
    let isoinfo = common::tool("isoinfo", "genisoimage");
    let seed = seed();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seed.iso");
    write_cidata_iso(&seed.documents, &path).expect("write");
    let file = path.to_str().expect("utf-8 path");
    let descriptor = run(&isoinfo, &["-d", "-i", file]);
    assert!(descriptor.contains("Volume id: cidata"), "{descriptor}");
    assert!(descriptor.contains("Rock Ridge signatures"), "{descriptor}");
    assert!(descriptor.contains("Joliet"), "{descriptor}");
    for (name, text) in seed.documents.files() {
        for extension in ["-R", "-J"] {
            let listing = run(&isoinfo, &[extension, "-f", "-i", file]);
            assert!(
                listing.lines().any(|line| line == format!("/{name}")),
                "{extension}: {listing}"
            );
            let content = run(
                &isoinfo,
                &[extension, "-i", file, "-x", &format!("/{name}")],
            );
            assert_eq!(content, text, "{extension} {name}");
        }
    }
}

#[test]
fn blkid_finds_it_the_way_cloud_init_does() {
    let blkid = common::tool("blkid", "util-linux");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("seed.iso");
    write_cidata_iso(&seed().documents, &path).expect("write");
    let probe = run(
        &blkid,
        &["-p", "-o", "export", path.to_str().expect("utf-8 path")],
    );
    assert!(probe.lines().any(|line| line == "LABEL=cidata"), "{probe}");
    assert!(probe.lines().any(|line| line == "TYPE=iso9660"), "{probe}");
}

#[test]
fn writing_into_a_missing_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = write_cidata_iso(&seed().documents, &dir.path().join("no/such/dir/seed.iso"))
        .expect_err("missing directory");
    assert!(
        error.to_string().contains("cannot write the cidata ISO"),
        "{error}"
    );
}

#[test]
fn any_flat_file_set_can_be_packed_and_bad_names_are_errors() {
    let files: [(&str, &[u8]); 2] = [
        ("meta-data", b"instance-id: x\n"),
        ("vendor-data", b"#cloud-config\n"),
    ];
    let image = kiln_cloud_init::build_cidata_iso_from(&files).expect("iso");
    let iso = IsoImage::open(Cursor::new(image)).expect("open");
    let entry = iso
        .find_path("vendor-data")
        .expect("lookup")
        .expect("vendor-data");
    assert_eq!(iso.read_file(&entry).expect("read"), b"#cloud-config\n");
    for bad in [
        &[("a/b", &b""[..])][..],
        &[("x", &b""[..]), ("x", &b""[..])][..],
        &[("", &b""[..])][..],
    ] {
        assert!(
            kiln_cloud_init::build_cidata_iso_from(bad).is_err(),
            "{:?}",
            bad.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
    }
}
