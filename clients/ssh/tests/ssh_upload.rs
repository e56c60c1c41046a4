//! Uploads over a real OpenSSH sshd on 127.0.0.1: the mode, the checksum
//! sha256sum computes, a target that a concurrent reader never sees half
//! written, failures that leave the target alone, and sudo uploads that end
//! up root's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod ssh_common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_ssh::{Privilege, UploadFile, UploadSource};
use ssh_common::login::Fixture;

fn version(byte: u8) -> Vec<u8> {
    vec![byte; 4 * 1024 * 1024]
}

#[tokio::test]
async fn an_upload_gets_its_mode_and_the_target_is_never_half_written() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("blob");
    let remote = target.to_str().unwrap().to_owned();
    session
        .upload(UploadSource::Bytes(&version(b'a')), &remote, 0o640)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let target = target.clone();
        std::thread::spawn(move || {
            let mut reads = 0u32;
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let data = std::fs::read(&target).unwrap();
                assert_eq!(data.len(), 4 * 1024 * 1024, "a short read: half written");
                let first = data[0];
                assert!(data.iter().all(|b| *b == first), "mixed content");
                seen.insert(first);
                reads += 1;
            }
            (reads, seen)
        })
    };
    for byte in [b'b', b'c', b'd', b'e', b'f'] {
        let uploaded = session
            .upload(UploadSource::Bytes(&version(byte)), &remote, 0o640)
            .await
            .unwrap();
        assert_eq!(uploaded.bytes, 4 * 1024 * 1024);
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, seen) = reader.join().unwrap();
    assert!(reads > 0);
    assert!(seen.iter().all(|b| (b'a'..=b'f').contains(b)), "{seen:?}");

    assert_eq!(std::fs::read(&target).unwrap(), version(b'f'));
    let metadata = std::fs::metadata(&target).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o640);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["blob"], "no temporary files left");
}

#[tokio::test]
async fn an_upload_from_a_file_reports_the_checksum_sha256sum_computes() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::write(&local, b"#!/bin/sh\necho hello\n").unwrap();
    let remote = dir.path().join("tool");
    let uploaded = session
        .upload(UploadSource::File(&local), remote.to_str().unwrap(), 0o755)
        .await
        .unwrap();
    let sum = Command::new("sha256sum").arg(&remote).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(sum.split_whitespace().next().unwrap(), uploaded.sha256);
    let ran = session.exec(remote.to_str().unwrap()).await.unwrap();
    assert_eq!(
        ran.stdout_text(),
        "hello\n",
        "executable: mode 0755 applied"
    );

    let missing = session
        .upload(
            UploadSource::File(&dir.path().join("absent")),
            remote.to_str().unwrap(),
            0o755,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("read the local file"), "{missing}");
    assert!(missing.contains("absent"), "{missing}");
    let relative = session
        .upload(UploadSource::Bytes(b"x"), "relative/path", 0o644)
        .await
        .unwrap_err()
        .to_string();
    assert!(relative.contains("must be absolute"), "{relative}");
    let into_missing_dir = session
        .upload(
            UploadSource::Bytes(b"x"),
            dir.path().join("no/such/dir/file").to_str().unwrap(),
            0o644,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(into_missing_dir.contains("upload "), "{into_missing_dir}");
    assert_eq!(
        std::fs::read(&remote).unwrap(),
        b"#!/bin/sh\necho hello\n",
        "failed uploads left the target alone"
    );
}

fn sudo_available() -> bool {
    if Path::new("/usr/bin/sudo").exists() {
        return true;
    }
    eprintln!("sudo missing (Debian sudo; `cargo xtask setup`): skipping");
    false
}

#[tokio::test]
async fn sudo_runs_as_root_and_a_sudo_upload_is_root_owned() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    if !sudo_available() {
        return;
    }
    let session = fixture.connect().await;
    let whoami = session
        .exec_sudo("id -u; echo \"it's quoted\"")
        .await
        .unwrap();
    assert!(whoami.status.success(), "{}", whoami.stderr_text());
    assert_eq!(whoami.stdout_text(), "0\nit's quoted\n");

    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("secret");
    session
        .upload_as(
            Privilege::Sudo,
            UploadSource::Bytes(b"token"),
            remote.to_str().unwrap(),
            0o600,
        )
        .await
        .unwrap();
    let metadata = std::fs::metadata(&remote).unwrap();
    assert_eq!(metadata.uid(), 0);
    assert_eq!(metadata.permissions().mode() & 0o7777, 0o600);
    assert_eq!(std::fs::read(&remote).unwrap(), b"token");
    let home = session.exec("ls -a").await.unwrap();
    assert!(
        !home.stdout_text().contains(".kiln-upload-"),
        "staging file removed: {}",
        home.stdout_text()
    );
}

#[tokio::test]
async fn a_batch_lands_every_file_with_its_mode_or_none_of_them() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let session = fixture.connect().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (tool, config) = (path("tool"), path("config"));
    std::fs::write(&config, b"old config").unwrap();
    let uploaded = session
        .upload_all_as(
            Privilege::Login,
            &[
                UploadFile {
                    source: UploadSource::Bytes(&version(b't')),
                    path: &tool,
                    mode: 0o755,
                },
                UploadFile {
                    source: UploadSource::Bytes(b"new config"),
                    path: &config,
                    mode: 0o600,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(uploaded.len(), 2);
    assert_eq!(uploaded[0].bytes, 4 * 1024 * 1024);
    assert_eq!(std::fs::read(&tool).unwrap(), version(b't'));
    assert_eq!(std::fs::read(&config).unwrap(), b"new config");
    let mode = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode(&tool), mode(&config)), (0o755, 0o600));

    // The second file cannot land (its directory is missing): the first,
    // though fully written, is not renamed into place either.
    let error = session
        .upload_all_as(
            Privilege::Login,
            &[
                UploadFile {
                    source: UploadSource::Bytes(b"newer config"),
                    path: &config,
                    mode: 0o600,
                },
                UploadFile {
                    source: UploadSource::Bytes(b"x"),
                    path: &path("missing/file"),
                    mode: 0o644,
                },
            ],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing/file"), "{error}");
    assert_eq!(std::fs::read(&config).unwrap(), b"new config");
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["config", "tool"], "no temporary files left");
}
