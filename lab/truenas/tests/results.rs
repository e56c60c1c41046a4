//! Every emulated method answers with a result its `methods.json` result schema accepts:
//! debug builds check each result before sending it (a mismatch comes back as an error), and
//! this test calls every method in `EMULATED_METHODS` at least once with valid params.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::Raw;
use kiln_lab_truenas::EMULATED_METHODS;
use serde_json::{Value, json};

#[tokio::test]
async fn every_emulated_method_result_matches_its_result_schema() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the result self-check runs in debug builds only");
        return;
    }
    let nas = common::start().await;
    let mut raw = Raw::connect(&nas).await;
    let mut called = BTreeSet::new();
    let key = nas.api_key().to_string();
    let user = nas.username().to_string();
    let steps: Vec<(&str, Value)> = vec![
        ("core.ping", json!([])),
        ("core.set_options", json!([{"legacy_jobs": true}])),
        ("auth.mechanism_choices", json!([])),
        (
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": user, "api_key": key}]),
        ),
        ("auth.login_with_api_key", json!([key])),
        ("auth.me", json!([])),
        ("system.info", json!([])),
        ("system.version", json!([])),
        ("system.version_short", json!([])),
        ("system.product_type", json!([])),
        ("system.ready", json!([])),
        ("system.state", json!([])),
        ("system.boot_id", json!([])),
        ("system.host_id", json!([])),
        (
            "pool.dataset.create",
            json!([{"name": "tank/k8s/c1/nfs", "create_ancestors": true, "user_properties": [{"key": "kiln:cluster", "value": "c1"}]}]),
        ),
        (
            "pool.dataset.create",
            json!([{"name": "tank/k8s/c1/iscsi/v1", "type": "VOLUME", "volsize": 1073741824u64, "volblocksize": "16K", "sparse": true, "create_ancestors": true}]),
        ),
        (
            "pool.dataset.query",
            json!([[["id", "in", ["tank/k8s/c1", "tank/k8s/c1/nfs"]]], {"extra": {"retrieve_children": false, "properties": []}}]),
        ),
        ("pool.dataset.query", json!([])),
        ("pool.dataset.get_instance", json!(["tank/k8s/c1/iscsi/v1"])),
        (
            "pool.dataset.update",
            json!(["tank/k8s/c1", {"comments": "kiln", "user_properties_update": [{"key": "kiln:owner", "value": "x"}]}]),
        ),
        ("iscsi.global.config", json!([])),
        (
            "iscsi.global.update",
            json!([{"basename": "iqn.2005-10.org.freenas.ctl"}]),
        ),
        ("iscsi.global.sessions", json!([])),
        ("iscsi.global.client_count", json!([])),
        ("iscsi.global.alua_enabled", json!([])),
        ("iscsi.global.iser_enabled", json!([])),
        ("iscsi.portal.listen_ip_choices", json!([])),
        (
            "iscsi.portal.create",
            json!([{"listen": [{"ip": "0.0.0.0"}], "comment": "kiln:c1"}]),
        ),
        ("iscsi.portal.query", json!([[["comment", "=", "kiln:c1"]]])),
        ("iscsi.portal.get_instance", json!([1])),
        (
            "iscsi.portal.update",
            json!([1, {"comment": "kiln:c1 portal"}]),
        ),
        (
            "iscsi.initiator.create",
            json!([{"initiators": ["iqn.2005-03.org.open-iscsi:c1-n1"], "comment": "kiln:c1"}]),
        ),
        ("iscsi.initiator.query", json!([])),
        ("iscsi.initiator.get_instance", json!([1])),
        (
            "iscsi.initiator.update",
            json!([1, {"initiators": ["iqn.2005-03.org.open-iscsi:c1-n1", "iqn.2005-03.org.open-iscsi:c1-n2"]}]),
        ),
        (
            "iscsi.auth.create",
            json!([{"tag": 1, "user": "kiln", "secret": "0123456789abcd"}]),
        ),
        ("iscsi.auth.query", json!([])),
        ("iscsi.auth.get_instance", json!([1])),
        (
            "iscsi.auth.update",
            json!([1, {"secret": "abcd0123456789"}]),
        ),
        ("iscsi.extent.disk_choices", json!([])),
        (
            "iscsi.extent.create",
            json!([{"name": "v1", "type": "DISK", "disk": "zvol/tank/k8s/c1/iscsi/v1", "blocksize": 512, "rpm": "SSD"}]),
        ),
        ("iscsi.extent.query", json!([])),
        ("iscsi.extent.get_instance", json!([1])),
        ("iscsi.extent.update", json!([1, {"comment": "kiln"}])),
        (
            "iscsi.target.create",
            json!([{"name": "v1", "alias": null, "mode": "ISCSI", "groups": [{"portal": 1, "initiator": 1, "authmethod": "CHAP", "auth": 1}]}]),
        ),
        ("iscsi.target.query", json!([])),
        ("iscsi.target.validate_name", json!(["v1", null])),
        ("iscsi.target.get_instance", json!([1])),
        (
            "iscsi.target.update",
            json!([1, {"auth_networks": ["10.213.7.0/24"]}]),
        ),
        (
            "iscsi.targetextent.create",
            json!([{"target": 1, "extent": 1, "lunid": 0}]),
        ),
        ("iscsi.targetextent.query", json!([])),
        ("iscsi.targetextent.get_instance", json!([1])),
        ("iscsi.targetextent.update", json!([1, {"lunid": 0}])),
        ("nfs.config", json!([])),
        ("nfs.update", json!([{"protocols": ["NFSV3", "NFSV4"]}])),
        ("nfs.bindip_choices", json!([])),
        ("nfs.client_count", json!([])),
        (
            "sharing.nfs.create",
            json!([{"path": "/mnt/tank/k8s/c1/nfs", "networks": ["10.213.7.0/24"], "maproot_user": "root", "maproot_group": "root", "comment": "kiln:c1"}]),
        ),
        (
            "sharing.nfs.query",
            json!([[["path", "=", "/mnt/tank/k8s/c1/nfs"]]]),
        ),
        ("sharing.nfs.get_instance", json!([1])),
        ("sharing.nfs.update", json!([1, {"ro": false}])),
        (
            "service.query",
            json!([[["service", "in", ["iscsitarget", "nfs"]]]]),
        ),
        ("service.get_instance", json!([7])),
        ("service.update", json!(["iscsitarget", {"enable": true}])),
        ("service.start", json!(["iscsitarget"])),
        ("service.started", json!(["iscsitarget"])),
        ("service.started_or_enabled", json!(["nfs"])),
        ("service.restart", json!(["iscsitarget"])),
        ("service.reload", json!(["iscsitarget"])),
        ("service.stop", json!(["iscsitarget"])),
        (
            "service.control",
            json!(["START", "nfs", {"ha_propagate": true, "silent": false, "timeout": 120}]),
        ),
        ("core.subscribe", json!(["core.get_jobs"])),
        (
            "core.get_jobs",
            json!([[["method", "=", "service.control"]]]),
        ),
        ("core.job_wait", json!([1])),
        ("core.job_abort", json!([1])),
        ("iscsi.targetextent.delete", json!([1])),
        ("iscsi.target.delete", json!([1])),
        ("iscsi.extent.delete", json!([1])),
        ("iscsi.auth.delete", json!([1])),
        ("iscsi.initiator.delete", json!([1])),
        ("iscsi.portal.delete", json!([1])),
        ("sharing.nfs.delete", json!([1])),
        (
            "pool.dataset.delete",
            json!(["tank/k8s", {"recursive": true}]),
        ),
        // Accounts (methods-accounts.json): a service account made and taken apart.
        (
            "user.create",
            json!([{"username": "svc", "full_name": "Service", "group_create": true, "password_disabled": true, "smb": false}]),
        ),
        ("user.query", json!([[["username", "=", "svc"]]])),
        ("user.get_instance", json!([3])),
        ("group.create", json!([{"name": "extra", "smb": false}])),
        ("group.query", json!([])),
        ("group.get_instance", json!([6])),
        ("group.delete", json!([6])),
        (
            "privilege.create",
            json!([{"name": "svc", "local_groups": [3000], "roles": ["DATASET_READ"], "web_shell": false}]),
        ),
        ("privilege.query", json!([])),
        ("privilege.get_instance", json!([4])),
        ("privilege.update", json!([4, {"roles": ["DATASET_WRITE"]}])),
        (
            "api_key.create",
            json!([{"name": "svc", "username": "svc"}]),
        ),
        ("api_key.query", json!([])),
        ("api_key.get_instance", json!([2])),
        ("api_key.update", json!([2, {"reset": true}])),
        ("api_key.my_keys", json!([])),
        ("api_key.delete", json!([2])),
        ("privilege.delete", json!([4])),
        ("user.delete", json!([3])),
        ("core.unsubscribe", json!(["not-a-subscription"])),
        ("auth.logout", json!([])),
    ];
    for (method, params) in steps {
        let answer = raw.call(method, params.clone()).await;
        assert!(answer.get("error").is_none(), "{method} {params}: {answer}");
        called.insert(method);
    }
    let missing: Vec<&&str> = EMULATED_METHODS
        .iter()
        .filter(|m| !called.contains(**m))
        .collect();
    assert!(
        missing.is_empty(),
        "emulated but not exercised: {missing:?}"
    );
    nas.shutdown().await;
}
