//! The JSONL request log: one line per request, secrets masked, mutating requests marked.
#![allow(clippy::unwrap_used)]

mod common;

use kiln_lab_pve::{LabConfig, LoggedRequest};

#[tokio::test]
async fn request_log_has_one_line_per_request_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let lab = common::start(LabConfig {
        request_log: Some(path.clone()),
        ..LabConfig::default()
    })
    .await;
    lab.lab.add_template("pve1", 9000, "tpl").unwrap();
    let password = lab.lab.password.clone();
    let login = lab
        .http
        .post(lab.url("/access/ticket"))
        .form(&[
            ("username", lab.lab.username.as_str()),
            ("password", password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let reply = lab.get("/cluster/resources?type=vm").await;
    assert_eq!(reply.status, 200);
    let reply = lab
        .put(
            "/nodes/pve1/qemu/9000/config",
            &[("cipassword", "hunter2-pw"), ("ciuser", "kiln")],
        )
        .await;
    assert_eq!(reply.status, 200);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<LoggedRequest> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for secret in [
        password.as_str(),
        lab.lab.token_secret.as_str(),
        "hunter2-pw",
    ] {
        assert!(
            !text.contains(secret),
            "secret leaked into the request log:\n{text}"
        );
    }
    assert_eq!(lines[0].path, "/api2/json/access/ticket");
    assert_eq!(lines[0].params["password"], "***");
    assert_eq!(lines[0].params["username"], "kiln@pve");
    assert!(lines[0].mutating);
    assert_eq!(lines[1].method, "GET");
    assert_eq!(lines[1].params["type"], "vm");
    assert_eq!(
        lines[1].auth.as_deref(),
        Some("PVEAPIToken=kiln@pve!kiln=***")
    );
    assert!(!lines[1].mutating);
    assert_eq!(lines[1].status, 200);
    assert_eq!(lines[2].method, "PUT");
    assert_eq!(lines[2].params["cipassword"], "***");
    assert_eq!(lines[2].params["ciuser"], "kiln");
    assert!(lines[2].mutating);
    assert!(!lines[2].time.is_empty());
    assert_eq!(lab.lab.requests(), lines);
    assert_eq!(lab.lab.requests().iter().filter(|r| r.mutating).count(), 2);
}
