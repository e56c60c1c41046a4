//! The Vault store and its run lock against a real OpenBao dev server
//! (`bao server -dev` from the project venv, or `$KILN_BAO`), one server per
//! test.

mod secrets_bao;

use std::time::{Duration, SystemTime};

use kiln_secrets::lock::Holder;
use kiln_secrets::vault::Credentials;
use kiln_secrets::{Cas, Data, LockError, LockRequest, SecretStore, SecretsError};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use secrets_bao::Bao;
use serde_json::json;

fn data(pairs: &[(&str, &str)]) -> Data {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), SecretString::from(*value)))
        .collect()
}

fn token(value: &str) -> Credentials {
    Credentials::Token(SecretString::from(value))
}

#[tokio::test]
async fn write_read_list_and_metadata() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let version = store
        .write(
            "app/db",
            data(&[("user", "kiln"), ("password", "p4ss")]),
            Cas::Absent,
        )
        .await
        .unwrap();
    assert_eq!(version, 1);

    let entry = store.read("app/db").await.unwrap().unwrap();
    assert_eq!(entry.data["password"].expose_secret(), "p4ss");
    assert_eq!(entry.meta.version, 1);
    assert_eq!(entry.meta.location, "secret/kiln/home/app/db");
    assert!(store.read("app/none").await.unwrap().is_none());

    store
        .write("ssh/kiln", data(&[("k", "v")]), Cas::Any)
        .await
        .unwrap();
    let listed = store.list().await.unwrap();
    let names: Vec<&str> = listed.iter().map(|meta| meta.name.as_str()).collect();
    assert_eq!(names, ["app/db", "ssh/kiln"]);
    assert!(
        listed
            .iter()
            .all(|meta| meta.created.is_some() && meta.updated.is_some())
    );

    // It really is KV v2 at the documented path: read it as any client would.
    let raw = bao
        .admin(Method::GET, "secret/data/kiln/home/app/db", None)
        .await;
    assert_eq!(raw["data"]["data"]["user"], "kiln");
}

#[tokio::test]
async fn check_and_set_conflicts_are_typed_errors() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    store
        .write("k", data(&[("v", "1")]), Cas::Absent)
        .await
        .unwrap();
    let error = store
        .write("k", data(&[("v", "2")]), Cas::Absent)
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::CasConflict { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("secret/kiln/home/k"), "{message}");

    assert_eq!(
        store
            .write("k", data(&[("v", "2")]), Cas::Version(1))
            .await
            .unwrap(),
        2
    );
    let error = store
        .write("k", data(&[("v", "3")]), Cas::Version(1))
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::CasConflict { .. }), "{error}");
    let entry = store.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data["v"].expose_secret(), "2");

    // Soft-deleted (as from the UI): no readable value, so "absent" holds.
    bao.admin(Method::DELETE, "secret/data/kiln/home/k", None)
        .await;
    assert!(store.read("k").await.unwrap().is_none());
    assert_eq!(
        store
            .write("k", data(&[("v", "4")]), Cas::Absent)
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn approle_login_with_the_least_privilege_policy() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let (role_id, secret_id) = bao
        .approle(json!({ "token_policies": ["kiln"], "token_ttl": "1h" }))
        .await;
    let store = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        // Ids as read from files: a trailing newline must not matter.
        role_id: SecretString::from(format!("{role_id}\n")),
        secret_id: SecretString::from(format!(" {secret_id}\n")),
    });
    store
        .write("ssh/kiln", data(&[("private_key", "x")]), Cas::Absent)
        .await
        .unwrap();
    assert!(store.read("ssh/kiln").await.unwrap().is_some());
    assert_eq!(store.list().await.unwrap().len(), 1);
    assert_eq!(store.client().counters().1, 1, "one login");

    // The policy confines kiln to its cluster's folder.
    let other = kiln_secrets::VaultStore::new(
        bao.settings(Credentials::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.clone().into(),
            secret_id: secret_id.clone().into(),
        }),
        "someone-else",
    )
    .unwrap();
    let error = other
        .write("x", data(&[("a", "b")]), Cas::Any)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("403") && error.contains("permission denied"),
        "{error}"
    );
    assert_eq!(
        other.client().counters().1,
        1,
        "a 403 from the policy is not an expired token: no second login"
    );

    let refused = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        role_id: role_id.into(),
        secret_id: "not-the-secret-id".into(),
    });
    let error = refused.read("ssh/kiln").await.unwrap_err().to_string();
    assert!(error.contains("login with approle"), "{error}");
    assert!(!error.contains("not-the-secret-id"), "{error}");
}

#[tokio::test]
async fn a_short_lived_token_is_renewed_during_a_long_run() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let created = bao
        .admin(
            Method::POST,
            "auth/token/create",
            Some(json!({
                "policies": ["kiln"], "ttl": "6s", "explicit_max_ttl": "5m",
                "renewable": true, "no_default_policy": true,
            })),
        )
        .await;
    let short = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let store = bao.store(token(&short));
    store
        .write("k", data(&[("v", "1")]), Cas::Any)
        .await
        .unwrap();
    // Over two TTLs: without renewal the token would be long dead. A 6 s
    // TTL leaves 2 s between a renewal (at 4 s) and expiry on a busy box.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let entry = store.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data["v"].expose_secret(), "1");
    let (renewals, logins) = store.client().counters();
    assert!(renewals >= 2, "renewed {renewals} times");
    assert_eq!(logins, 1);
}

#[tokio::test]
async fn approle_logs_in_again_when_its_token_cannot_be_renewed() {
    let bao = Bao::start().await;
    bao.kiln_policy().await;
    let (role_id, secret_id) = bao
        .approle(json!({
            "token_policies": ["kiln"], "token_ttl": "3s", "token_max_ttl": "3s",
        }))
        .await;
    let store = bao.store(Credentials::AppRole {
        mount: "approle".to_owned(),
        role_id: role_id.into(),
        secret_id: secret_id.into(),
    });
    store
        .write("k", data(&[("v", "1")]), Cas::Any)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(store.read("k").await.unwrap().is_some());
    let (_, logins) = store.client().counters();
    assert!(logins >= 2, "logged in {logins} times");
}

fn stale_holder() -> Holder {
    let long_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    Holder {
        run_id: "0190-dead-run".to_owned(),
        user: "ops".to_owned(),
        host: "old-laptop".to_owned(),
        pid: 4242,
        command: "kiln apply".to_owned(),
        started: humantime::format_rfc3339_seconds(long_ago).to_string(),
        renewed: humantime::format_rfc3339_seconds(long_ago).to_string(),
        ttl_seconds: 600,
    }
}

#[tokio::test]
async fn a_stale_lock_is_taken_over_and_a_live_one_is_not() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let stale = stale_holder();
    store
        .write(
            "lock",
            data(&[
                ("state", "held"),
                ("holder", &serde_json::to_string(&stale).unwrap()),
            ]),
            Cas::Absent,
        )
        .await
        .unwrap();

    let lock = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert_eq!(lock.taken_over().unwrap().run_id, "0190-dead-run");
    assert_eq!(lock.location(), "secret/kiln/home/lock");

    let error = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap_err();
    let LockError::Held { holder, .. } = &error else {
        panic!("expected a held lock, got {error}");
    };
    assert_eq!(holder.run_id, lock.holder().run_id);
    assert!(error.to_string().contains(&lock.holder().run_id));

    lock.release().await.unwrap();
    let again = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert!(
        again.taken_over().is_none(),
        "a released lock is free, not stale"
    );
    again.release().await.unwrap();
    assert!(
        store.list().await.unwrap().is_empty(),
        "the lock is not listed as a secret"
    );
}

#[tokio::test]
async fn a_held_lock_is_renewed_so_it_never_looks_stale() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let mut request = LockRequest::new("home", "kiln apply");
    request.ttl = Duration::from_secs(3);
    let lock = store.lock(request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let error = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap_err();
    assert!(matches!(error, LockError::Held { .. }), "{error}");
    assert!(!lock.is_lost());
    lock.release().await.unwrap();
}

#[tokio::test]
async fn a_lock_dropped_without_release_expires_and_is_taken_over() {
    let bao = Bao::start().await;
    let store = bao.root_store();
    let mut request = LockRequest::new("home", "kiln apply");
    request.ttl = Duration::from_secs(2);
    let dropped = store.lock(request).await.unwrap();
    let run_id = dropped.holder().run_id.clone();
    drop(dropped);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let next = store
        .lock(LockRequest::new("home", "kiln apply"))
        .await
        .unwrap();
    assert_eq!(next.taken_over().unwrap().run_id, run_id);
    next.release().await.unwrap();
}
