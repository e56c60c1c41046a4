use std::fs;
use std::os::unix::fs::PermissionsExt;

use secrecy::{ExposeSecret, SecretString};

use super::*;

fn dirs(root: &Path) -> Dirs {
    Dirs {
        state: root.join("state"),
        config: root.join("config"),
    }
}

fn one(value: &str) -> Data {
    single_value(SecretString::from(value))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn round_trip_through_the_encrypted_file() {
    let root = tempfile::tempdir().unwrap();
    let store = FileStore::new(&dirs(root.path()), "home");
    assert!(store.read("proxmox").await.unwrap().is_none());
    assert!(!store.identity_path().exists(), "reading creates nothing");

    let version = store
        .write("proxmox", one("canary-7f3a"), Cas::Absent)
        .await
        .unwrap();
    assert_eq!(version, 1);
    let entry = store.read("proxmox").await.unwrap().unwrap();
    assert_eq!(entry.data[VALUE_KEY].expose_secret(), "canary-7f3a");
    assert_eq!(entry.meta.version, 1);
    assert!(entry.meta.created.is_some());

    let raw = fs::read(store.store_path()).unwrap();
    assert!(
        !raw.windows(11).any(|window| window == b"canary-7f3a"),
        "the store file is encrypted"
    );
    assert_eq!(mode(store.store_path()), 0o600);
    assert_eq!(mode(store.identity_path()), 0o600);
    assert_eq!(mode(&root.path().join("state")), 0o700);
    assert_eq!(mode(&root.path().join("config")), 0o700);

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "proxmox");
    assert_eq!(listed[0].keys, vec![VALUE_KEY.to_owned()]);
}

#[tokio::test]
async fn check_and_set_refuses_stale_writes() {
    let root = tempfile::tempdir().unwrap();
    let store = FileStore::new(&dirs(root.path()), "home");
    store.write("k", one("a"), Cas::Absent).await.unwrap();
    let error = store.write("k", one("b"), Cas::Absent).await.unwrap_err();
    assert!(matches!(error, SecretsError::CasConflict { .. }), "{error}");
    store.write("k", one("b"), Cas::Version(1)).await.unwrap();
    let error = store
        .write("k", one("c"), Cas::Version(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("expected version 1, found 2"), "{error}");
    let entry = store.read("k").await.unwrap().unwrap();
    assert_eq!(entry.data[VALUE_KEY].expose_secret(), "b");
}

#[tokio::test]
async fn a_wrong_identity_is_an_error_not_an_empty_store() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    let store = FileStore::new(&dirs, "home");
    store.write("k", one("v"), Cas::Any).await.unwrap();

    fs::remove_file(store.identity_path()).unwrap();
    identity::create(store.identity_path()).unwrap();
    let error = store.read("k").await.unwrap_err();
    assert!(
        matches!(error, SecretsError::WrongIdentity { .. }),
        "{error}"
    );
    let error = store.write("other", one("v"), Cas::Any).await.unwrap_err();
    assert!(
        matches!(error, SecretsError::WrongIdentity { .. }),
        "{error}"
    );
    assert!(store.list().await.is_err());
}

#[test]
fn creating_an_identity_never_replaces_one() {
    let root = tempfile::tempdir().unwrap();
    let path = identity::path(root.path());
    let first = identity::create(&path).unwrap().to_public().to_string();
    let second = identity::create(&path).unwrap().to_public().to_string();
    assert_eq!(first, second, "a racing creator gets the existing identity");
}

#[tokio::test]
async fn a_missing_identity_is_an_error_and_no_new_one_is_made() {
    let root = tempfile::tempdir().unwrap();
    let store = FileStore::new(&dirs(root.path()), "home");
    store.write("k", one("v"), Cas::Any).await.unwrap();
    fs::remove_file(store.identity_path()).unwrap();

    let error = store.read("k").await.unwrap_err().to_string();
    assert!(
        error.contains("identity") && error.contains("missing"),
        "{error}"
    );
    let error = store.write("k", one("w"), Cas::Any).await.unwrap_err();
    assert!(
        matches!(error, SecretsError::IdentityMissing { .. }),
        "{error}"
    );
    assert!(store.init().await.is_err());
    assert!(
        !store.identity_path().exists(),
        "kiln never replaces a lost identity silently"
    );
}

#[tokio::test]
async fn a_group_readable_identity_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = FileStore::new(&dirs(root.path()), "home");
    store.write("k", one("v"), Cas::Any).await.unwrap();
    fs::set_permissions(store.identity_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let error = store.read("k").await.unwrap_err().to_string();
    assert!(error.contains("mode 0644"), "{error}");
    assert!(error.contains("chmod 600"), "{error}");
}

#[tokio::test]
async fn init_creates_identity_and_empty_store_once() {
    let root = tempfile::tempdir().unwrap();
    let store = FileStore::new(&dirs(root.path()), "home");
    let first = store.init().await.unwrap();
    assert!(first.identity_created && first.store_created);
    assert!(first.public_key.starts_with("age1"));
    let second = store.init().await.unwrap();
    assert!(!second.identity_created && !second.store_created);
    assert_eq!(first.public_key, second.public_key);
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_store_of_another_cluster_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    let home = FileStore::new(&dirs, "home");
    home.write("k", one("v"), Cas::Any).await.unwrap();
    fs::copy(home.store_path(), dirs.state.join("lab.secrets.age")).unwrap();
    let error = FileStore::new(&dirs, "lab")
        .read("k")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("belongs to cluster `home`"), "{error}");
}

#[tokio::test]
async fn concurrent_writers_never_lose_each_others_entries() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path());
    // Separate FileStore values open separate lock files, as two processes do.
    let writers: Vec<_> = (0..8)
        .map(|index| {
            let store = FileStore::new(&dirs, "home");
            tokio::spawn(async move {
                store
                    .write(&format!("entry-{index}"), one("v"), Cas::Absent)
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    let names: Vec<String> = FileStore::new(&dirs, "home")
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.name)
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
}
