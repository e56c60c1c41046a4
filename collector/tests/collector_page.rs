//! The status page in a real browser: headless Chromium (Debian `chromium`,
//! installed by `cargo xtask setup`) loads it from a collector on 127.0.0.1,
//! renders the DOM and takes a screenshot. Without Chromium this test fails:
//! a page nobody rendered is not a tested page.

#![allow(clippy::unwrap_used)]

mod collector_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use collector_common::{Running, check, healthy, report};
use kiln_agent::report::Status;

const CHROMIUM_CANDIDATES: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];

fn chromium() -> PathBuf {
    CHROMIUM_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to test the status page and none of {CHROMIUM_CANDIDATES:?} \
                 exists: run `cargo xtask setup` (it installs the Debian package `chromium`)"
            )
        })
}

/// Runs Chromium headless on `url` with `extra` arguments; returns stdout.
async fn run_chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Only here: the collector's certificate is self-signed and a
            // browser has no way to take a pin on the command line.
            "--ignore-certificate-errors",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env("HOME", profile)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("cannot start chromium");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("chromium did not finish within 120 s (it is killed on drop)")
        .expect("chromium failed to run");
    assert!(
        output.status.success(),
        "chromium exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn chromium_renders_every_node_with_its_state_and_takes_a_screenshot() {
    let collector = Running::start(|_| {}).await;
    let cp1 = collector.issue("cp1");
    let w1 = collector.issue("w1");
    collector.issue("w2");
    let failing = report(
        "cp1",
        1,
        vec![
            check("unit.sshd", Status::Ok, "active"),
            check("unit.kubelet", Status::Fail, "inactive <dead>"),
        ],
    );
    assert_eq!(collector.send(&cp1, &failing).await.0, 202);
    assert_eq!(collector.send(&w1, &healthy("w1", 1)).await.0, 202);

    let profile = tempfile::tempdir().unwrap();
    let page_url = format!("{}/", collector.url);
    let dom = run_chromium(profile.path(), &page_url, &["--dump-dom".to_owned()]).await;
    for (node, state) in [("cp1", "failing"), ("w1", "healthy"), ("w2", "unknown")] {
        assert!(
            dom.contains(&format!("data-node=\"{node}\" data-state=\"{state}\"")),
            "{node} is not rendered as {state}:\n{dom}"
        );
    }
    assert!(dom.contains("unit.kubelet: inactive &lt;dead&gt;"), "{dom}");
    assert!(!dom.contains("unit.sshd"), "an ok check is listed:\n{dom}");
    assert!(
        dom.contains("3 nodes: 1 healthy, 1 failing, 1 unknown"),
        "{dom}"
    );

    let shot = profile.path().join("status.png");
    run_chromium(
        profile.path(),
        &page_url,
        &[format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // 1200×800 of a rendered table compresses to several KiB; a blank page to far less.
    assert!(
        png.len() > 8 * 1024,
        "the screenshot is {} bytes",
        png.len()
    );
}
