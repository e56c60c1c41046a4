//! Users, privileges and API keys, and roles enforced per call: a key logs in as its user,
//! and each call is allowed only if the user's privileges' roles cover the method's roles.
#![allow(clippy::unwrap_used)]

mod common;

use common::Raw;
use kiln_lab_truenas::RunningTruenas;
use serde_json::{Value, json};

/// A connection logged in with `key`.
async fn logged_in_with(nas: &RunningTruenas, key: &str) -> Raw {
    let mut raw = Raw::connect(nas).await;
    let answer = raw.call("auth.login_with_api_key", json!([key])).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    raw
}

/// user (with its own group) → privilege with `roles` on that group → key; answers the
/// user's id, the privilege's id and the key's create result.
async fn service_account(admin: &mut Raw, name: &str, roles: &[&str]) -> (u64, u64, Value) {
    let user = admin
        .ok(
            "user.create",
            json!([{"username": name, "full_name": "CSI driver", "group_create": true,
                    "password_disabled": true, "smb": false}]),
        )
        .await;
    assert_eq!(user["password_disabled"], json!(true));
    assert_eq!(user["home"], json!("/var/empty"));
    let gid = user["group"]["bsdgrp_gid"].as_u64().unwrap();
    let privilege = admin
        .ok(
            "privilege.create",
            json!([{"name": format!("{name} privilege"), "local_groups": [gid], "roles": roles, "web_shell": false}]),
        )
        .await;
    assert_eq!(privilege["local_groups"][0]["gid"], json!(gid));
    let key = admin
        .ok(
            "api_key.create",
            json!([{"name": format!("{name} key"), "username": name}]),
        )
        .await;
    (
        user["id"].as_u64().unwrap(),
        privilege["id"].as_u64().unwrap(),
        key,
    )
}

fn is_truenas_key(key: &str, id: u64) -> bool {
    let (prefix, secret) = key.split_once('-').unwrap();
    prefix == id.to_string()
        && secret.len() == 64
        && secret.chars().all(|c| c.is_ascii_alphanumeric())
}

#[tokio::test]
async fn a_key_may_call_what_its_roles_cover_and_nothing_else() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    let (_, _, created) = service_account(
        &mut admin,
        "csi",
        &["SHARING_ISCSI_TARGET_WRITE", "DATASET_READ"],
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let key_id = created["id"].as_u64().unwrap();
    assert!(is_truenas_key(&key, key_id), "{key}");
    // Queries never show the key.
    let listed = admin
        .ok("api_key.query", json!([[["id", "=", key_id]]]))
        .await;
    assert!(listed[0].get("key").is_none(), "{listed}");
    assert!(!listed.to_string().contains(&key));
    assert_eq!(listed[0]["username"], json!("csi"));

    let mut csi = logged_in_with(&nas, &key).await;
    // Inside: the declared role, and READ through WRITE's includes.
    csi.ok("iscsi.target.query", json!([])).await;
    csi.ok("pool.dataset.query", json!([[["id", "=", "tank"]]]))
        .await;
    // No authorization required: any logged-in user; no authentication: anyone.
    csi.ok("system.version", json!([])).await;
    csi.ok("core.ping", json!([])).await;
    let again = csi.ok("auth.login_with_api_key", json!([key])).await;
    assert_eq!(again, json!(true));
    // Outside: refused as check_method_access refuses, before params are looked at.
    let refused = csi
        .err(
            "iscsi.portal.create",
            json!([{"listen": [{"ip": "0.0.0.0"}]}]),
        )
        .await;
    assert_eq!(refused["code"], json!(-32001), "{refused}");
    assert_eq!(refused["data"]["error"], json!(13));
    assert_eq!(refused["data"]["errname"], json!("EACCES"));
    assert_eq!(refused["data"]["reason"], json!("[EACCES] Not authorized"));
    let refused = csi.err("pool.dataset.delete", json!(["tank/x"])).await;
    assert_eq!(refused["data"]["errname"], json!("EACCES"));
    // A method that declares no roles is FULL_ADMIN's.
    let refused = csi.err("api_key.query", json!([])).await;
    assert_eq!(refused["data"]["errname"], json!("EACCES"));
    // auth.me tells the user and its expanded roles.
    let me = csi.ok("auth.me", json!([])).await;
    assert_eq!(me["pw_name"], json!("csi"));
    let roles = me["privilege"]["roles"].as_array().unwrap();
    assert!(roles.contains(&json!("SHARING_ISCSI_TARGET_READ")));
    assert!(!roles.contains(&json!("FULL_ADMIN")));
    nas.shutdown().await;
}

#[tokio::test]
async fn reset_replaces_the_key_and_delete_revokes_it() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    let (user_id, _, created) = service_account(&mut admin, "csi", &["DATASET_READ"]).await;
    let old = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_u64().unwrap();
    logged_in_with(&nas, &old).await;

    // Without reset: no key in the answer.
    let renamed = admin
        .ok("api_key.update", json!([id, {"name": "csi key 2"}]))
        .await;
    assert!(renamed.get("key").is_none(), "{renamed}");
    let reset = admin
        .ok("api_key.update", json!([id, {"reset": true}]))
        .await;
    let new = reset["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(is_truenas_key(&new, id));
    let mut raw = Raw::connect(&nas).await;
    assert_eq!(
        raw.ok("auth.login_with_api_key", json!([old])).await,
        json!(false)
    );
    let ex = raw
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": "csi", "api_key": old}]),
        )
        .await;
    assert_eq!(ex["response_type"], json!("AUTH_ERR"));
    logged_in_with(&nas, &new).await;

    // Deleting the user leaves its key revoked: no login.
    admin.ok("user.delete", json!([user_id])).await;
    let listed = admin.ok("api_key.get_instance", json!([id])).await;
    assert_eq!(listed["revoked"], json!(true));
    assert_eq!(listed["revoked_reason"], json!("User does not exist"));
    assert_eq!(
        raw.ok("auth.login_with_api_key", json!([new])).await,
        json!(false)
    );

    // Deleting the key: gone.
    admin.ok("api_key.delete", json!([id])).await;
    let gone = admin.err("api_key.get_instance", json!([id])).await;
    assert!(
        gone["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{gone}"
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn deleting_a_key_ends_its_logins() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    let (_, _, created) = service_account(&mut admin, "csi", &["DATASET_READ"]).await;
    let key = created["key"].as_str().unwrap().to_string();
    admin.ok("api_key.delete", json!([created["id"]])).await;
    let mut raw = Raw::connect(&nas).await;
    assert_eq!(
        raw.ok("auth.login_with_api_key", json!([key])).await,
        json!(false)
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn privileges_decide_roles_and_are_checked() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    let (_, privilege_id, created) = service_account(&mut admin, "csi", &["DATASET_READ"]).await;
    let key = created["key"].as_str().unwrap().to_string();
    let mut csi = logged_in_with(&nas, &key).await;
    csi.err("iscsi.target.query", json!([])).await;
    // Roles widened: the same session may now call it.
    let updated = admin
        .ok(
            "privilege.update",
            json!([privilege_id, {"roles": ["DATASET_READ", "SHARING_ISCSI_TARGET_READ"]}]),
        )
        .await;
    assert_eq!(
        updated["roles"],
        json!(["DATASET_READ", "SHARING_ISCSI_TARGET_READ"])
    );
    csi.ok("iscsi.target.query", json!([])).await;

    let bad = admin
        .err(
            "privilege.create",
            json!([{"name": "x", "local_groups": [99999], "roles": ["NOPE"], "web_shell": false}]),
        )
        .await;
    let errors = common::extra(&bad);
    assert_eq!(
        errors[0].0,
        json!("privilege_create.local_groups.0"),
        "{bad}"
    );
    assert_eq!(
        errors[1],
        (json!("privilege_create.roles.0"), "Invalid role".into(), 22)
    );
    let dup = admin
        .err(
            "privilege.create",
            json!([{"name": "csi privilege", "web_shell": false}]),
        )
        .await;
    assert_eq!(
        common::extra(&dup)[0].1,
        "Object with this name already exists"
    );
    // Strict as methods.json: unknown fields and coercion refused.
    let strict = admin
        .err(
            "privilege.create",
            json!([{"name": "y", "web_shell": "false"}]),
        )
        .await;
    assert_eq!(strict["code"], json!(-32602), "{strict}");
    // The group a privilege holds cannot be deleted.
    let gid = updated["local_groups"][0]["id"].clone();
    let held = admin.err("group.delete", json!([gid])).await;
    assert_eq!(held["data"]["errname"], json!("EACCES"), "{held}");
    admin.ok("privilege.delete", json!([privilege_id])).await;
    admin.ok("group.delete", json!([gid])).await;
    // Built-in privileges stay.
    let builtin = admin.err("privilege.delete", json!([1])).await;
    assert_eq!(builtin["data"]["errname"], json!("EPERM"));
    nas.shutdown().await;
}

#[tokio::test]
async fn users_without_a_privilege_get_no_key_and_no_login() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    admin
        .ok(
            "user.create",
            json!([{"username": "plain", "full_name": "No privilege", "group_create": true, "password_disabled": true, "smb": false}]),
        )
        .await;
    let refused = admin
        .err(
            "api_key.create",
            json!([{"name": "k", "username": "plain"}]),
        )
        .await;
    assert_eq!(
        common::extra(&refused)[0].1,
        "User lacks privilege role membership."
    );
    // SMB users cannot have their password disabled (`common_validation`).
    let smb = admin
        .err("user.create", json!([{"username": "s", "full_name": "S", "group_create": true, "password_disabled": true}]))
        .await;
    assert_eq!(
        common::extra(&smb)[0].0,
        json!("user_create.password_disabled")
    );
    let dup = admin
        .err("user.create", json!([{"username": "plain", "full_name": "P", "group_create": true, "password_disabled": true, "smb": false}]))
        .await;
    assert_eq!(common::extra(&dup)[0].2, 17);
    nas.shutdown().await;
}

#[tokio::test]
async fn key_entries_mask_the_hash() {
    let nas = common::start().await;
    let mut admin = Raw::logged_in(&nas).await;
    let (_, _, created) = service_account(&mut admin, "csi", &["DATASET_READ"]).await;
    let listed = admin
        .ok("api_key.get_instance", json!([created["id"]]))
        .await;
    assert_eq!(listed["revoked"], json!(false));
    assert_eq!(listed["keyhash"], json!("********"));
    // The bootstrap key is listed as truenas_admin's, and is not the API's to change.
    let bootstrap = admin.ok("api_key.get_instance", json!([1])).await;
    assert_eq!(bootstrap["username"], json!("truenas_admin"));
    admin.err("api_key.delete", json!([1])).await;
    nas.shutdown().await;
}
