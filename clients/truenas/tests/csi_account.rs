//! democratic-csi's API key against the TrueNAS emulator, which enforces
//! roles per call: made once with the least roles, handed back once, able
//! to do what democratic-csi does and nothing else, set back when its
//! privilege drifts, rotated, and never shown.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use kiln_lab_truenas::{EMULATED_METHODS, RunningTruenas, TruenasFaults};
use kiln_truenas::ensure::{self, Change, DesiredCsiAccount, DesiredStorage};
use kiln_truenas::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::{client_config, connect, mutating_calls, start_nas};

const USERNAME: &str = "kiln-csi-lab";

fn least_roles() -> BTreeSet<String> {
    DEMOCRATIC_CSI_ROLES
        .iter()
        .map(|r| (*r).to_owned())
        .collect()
}

fn desired(roles: BTreeSet<String>) -> DesiredStorage {
    DesiredStorage {
        cluster: "lab".into(),
        datasets: Vec::new(),
        iscsi: None,
        nfs: None,
        csi_account: Some(DesiredCsiAccount {
            username: USERNAME.into(),
            roles,
        }),
    }
}

async fn ensure_all(client: &TruenasClient, desired: &DesiredStorage) -> ensure::StorageIds {
    let plan = ensure::plan(client, desired).await.expect("plan");
    ensure::apply(client, plan).await.expect("apply")
}

/// A bare JSON-RPC connection logged in with `key` (to call any method).
struct Raw {
    ws: tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    next: u64,
}

impl Raw {
    async fn login(nas: &RunningTruenas, key: &str) -> (Self, bool) {
        let pin = nas.fingerprint.parse().expect("fingerprint");
        let tls = kiln_tls::Trust::Pin(pin).client_config().expect("tls");
        let tcp = tokio::net::TcpStream::connect(nas.local_addr)
            .await
            .expect("tcp");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .expect("tls");
        let url = format!("wss://{}/api/current", nas.local_addr);
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("websocket");
        let mut raw = Self { ws, next: 0 };
        let answer = raw.call("auth.login_with_api_key", json!([key])).await;
        let ok = answer["result"] == json!(true);
        (raw, ok)
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
        // Bounded: the emulator answers every call; notifications are skipped.
        for _ in 0..1000 {
            let Some(Ok(Message::Text(text))) = self.ws.next().await else {
                panic!("connection closed waiting for {method}");
            };
            let answer: Value = serde_json::from_str(text.as_str()).expect("json");
            if answer["id"] == json!(id) {
                return answer;
            }
        }
        panic!("no answer to {method}");
    }
}

fn refused_for_roles(answer: &Value) -> bool {
    answer["error"]["data"]["errname"] == json!("EACCES")
}

#[tokio::test]
async fn the_account_is_made_once_and_its_key_handed_back_once() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = desired(least_roles());

    let plan = ensure::plan(&client, &want).await.unwrap();
    assert!(mutating_calls(&nas).is_empty(), "plan must only read");
    let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines[0],
        "user kiln-csi-lab: create (democratic-csi's service account, no password)"
    );
    assert!(
        lines[1].starts_with(
            "privilege for kiln-csi-lab's group: create with roles DATASET_DELETE, DATASET_READ"
        ),
        "{lines:?}"
    );
    assert_eq!(
        lines[2],
        "API key for kiln-csi-lab: create (secret ********)"
    );

    let ids = ensure::apply(&client, plan).await.unwrap();
    let new_key = ids.csi_api_key.clone().expect("a new key");
    let (id, secret) = new_key.key.expose_secret().split_once('-').unwrap();
    assert_eq!(id, new_key.key_id.to_string());
    assert!(secret.len() == 64 && secret.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(new_key.username, USERNAME);
    assert!(!format!("{ids:?}").contains(secret), "{ids:?}");

    // On the NAS: kiln's user, its group holding exactly the roles, the key.
    let user = &client
        .users(&[Filter::eq("username", USERNAME)])
        .await
        .unwrap()[0];
    assert_eq!(user.full_name, "kiln:lab");
    assert!(user.password_disabled);
    let privilege = &client
        .privileges(&[Filter::eq("name", "kiln:lab")])
        .await
        .unwrap()[0];
    assert_eq!(
        privilege.roles.iter().cloned().collect::<BTreeSet<_>>(),
        least_roles()
    );
    assert_eq!(privilege.gids(), [user.group.gid]);
    assert!(!privilege.web_shell);
    let keys = client
        .api_keys(&[Filter::eq("username", USERNAME)])
        .await
        .unwrap();
    assert_eq!((keys.len(), keys[0].name.as_str()), (1, "kiln:lab"));

    // Again: nothing to do, no changing call, no key handed back.
    let before = mutating_calls(&nas).len();
    let again = ensure::plan(&client, &want).await.unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(
        ensure::apply(&client, again).await.unwrap().csi_api_key,
        None
    );
    assert_eq!(mutating_calls(&nas).len(), before);

    // The key is in no call the NAS logged (create answered it; nothing sent it).
    let log = serde_json::to_string(&nas.calls()).unwrap();
    assert!(!log.contains(secret));
    nas.shutdown().await;
}

#[tokio::test]
async fn the_key_can_do_what_democratic_csi_does_and_nothing_more() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let ids = ensure_all(&client, &desired(least_roles())).await;
    let key = ids.csi_api_key.unwrap().key;

    let (mut csi, logged_in) = Raw::login(&nas, key.expose_secret()).await;
    assert!(logged_in);
    let served: Vec<&str> = DEMOCRATIC_CSI_METHODS
        .iter()
        .copied()
        .filter(|m| EMULATED_METHODS.contains(m))
        .collect();
    assert!(served.len() >= 15, "{served:?}");
    // SHARING_NFS_WRITE, which sharing.nfs.create needs, also covers nfs.update and
    // service.control (TrueNAS then limits the latter to the nfs service itself).
    for method in served.into_iter().chain(["nfs.update", "service.control"]) {
        // Authorization comes before the params: an empty list still tells.
        let answer = csi.call(method, json!([])).await;
        assert!(!refused_for_roles(&answer), "{method} refused: {answer}");
    }
    for method in [
        "iscsi.portal.create",
        "iscsi.initiator.create",
        "iscsi.auth.query",
        "iscsi.global.update",
        "user.create",
        "privilege.update",
        "api_key.create",
        "api_key.query",
    ] {
        let answer = csi.call(method, json!([])).await;
        assert!(refused_for_roles(&answer), "{method} allowed: {answer}");
        assert_eq!(
            answer["error"]["data"]["reason"],
            json!("[EACCES] Not authorized")
        );
    }

    // And through kiln's own client, logging in with login_ex as the user.
    let mut config = client_config(&nas);
    config.api_key = key.clone();
    config.username = Some(USERNAME.to_owned());
    let as_csi = TruenasClient::connect(config).await.unwrap();
    assert!(as_csi.iscsi_global().await.is_ok());
    assert!(as_csi.datasets(&[]).await.is_ok());
    let refused = as_csi.portals(&[]).await.unwrap_err();
    assert!(refused.to_string().contains("Not authorized"), "{refused}");
    nas.shutdown().await;
}

#[tokio::test]
async fn a_drifted_privilege_is_set_back_and_other_accounts_are_left_alone() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = desired(least_roles());
    ensure_all(&client, &want).await;

    // Someone else's account: a user, a privilege, a key.
    let alice = client
        .create_service_user(&NewServiceUser {
            username: "alice".into(),
            full_name: "Alice".into(),
        })
        .await
        .unwrap();
    client
        .create_privilege(&NewPrivilege {
            name: "alice".into(),
            local_groups: vec![alice.group.gid],
            roles: vec!["READONLY_ADMIN".into()],
            web_shell: false,
        })
        .await
        .unwrap();
    client
        .create_api_key(&NewApiKey {
            name: "alice".into(),
            username: "alice".into(),
        })
        .await
        .unwrap();

    // Drift: kiln's privilege loses roles, gains one, and a second group.
    let ours = &client
        .privileges(&[Filter::eq("name", "kiln:lab")])
        .await
        .unwrap()[0];
    client
        .update_privilege(
            ours.id,
            &PrivilegeUpdate {
                local_groups: Some(vec![ours.gids()[0], alice.group.gid]),
                roles: Some(vec!["DATASET_READ".into(), "SHARING_ISCSI_WRITE".into()]),
            },
        )
        .await
        .unwrap();
    let plan = ensure::plan(&client, &want).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let Change::SetCsiPrivilege { added, removed, .. } = &plan.changes[0] else {
        panic!("{:?}", plan.changes);
    };
    assert_eq!(removed, &["SHARING_ISCSI_WRITE"]);
    assert!(added.contains(&"DATASET_DELETE".to_owned()));
    let ids = ensure::apply(&client, plan).await.unwrap();
    assert_eq!(ids.csi_api_key, None);
    let ours = &client
        .privileges(&[Filter::eq("name", "kiln:lab")])
        .await
        .unwrap()[0];
    assert_eq!(
        ours.roles.iter().cloned().collect::<BTreeSet<_>>(),
        least_roles()
    );
    assert_eq!(ours.roles.len(), least_roles().len());
    let kiln_user = &client
        .users(&[Filter::eq("username", USERNAME)])
        .await
        .unwrap()[0];
    assert_eq!(ours.gids(), [kiln_user.group.gid]);
    assert!(
        ensure::plan(&client, &want)
            .await
            .unwrap()
            .changes
            .is_empty()
    );

    // Alice's things are as she left them.
    let theirs = &client
        .privileges(&[Filter::eq("name", "alice")])
        .await
        .unwrap()[0];
    assert_eq!(theirs.roles, ["READONLY_ADMIN"]);
    assert_eq!(
        client
            .api_keys(&[Filter::eq("username", "alice")])
            .await
            .unwrap()
            .len(),
        1
    );

    // A user of the desired name that is not kiln's is a conflict, not a takeover.
    let mut hers = desired(least_roles());
    if let Some(account) = &mut hers.csi_account {
        account.username = "alice".into();
    }
    let conflict = ensure::plan(&client, &hers).await.unwrap_err();
    assert!(conflict.to_string().contains("not kiln's"), "{conflict}");
    assert!(ensure::rotate_csi_key(&client, "alice").await.is_err());
    nas.shutdown().await;
}

#[tokio::test]
async fn rotation_replaces_the_secret_and_the_old_one_stops_working() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = desired(least_roles());
    let first = ensure_all(&client, &want).await.csi_api_key.unwrap();

    let rotated = ensure::rotate_csi_key(&client, USERNAME).await.unwrap();
    assert_ne!(rotated.expose_secret(), first.key.expose_secret());
    assert!(
        rotated
            .expose_secret()
            .starts_with(&format!("{}-", first.key_id))
    );
    assert!(!Raw::login(&nas, first.key.expose_secret()).await.1);
    assert!(Raw::login(&nas, rotated.expose_secret()).await.1);
    // Rotation is not drift: the next plan has nothing to do.
    assert!(
        ensure::plan(&client, &want)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    nas.shutdown().await;
}

#[tokio::test]
async fn a_user_deleted_by_hand_is_made_again_with_a_new_key() {
    let nas = start_nas(TruenasFaults::default()).await;
    let client = connect(&nas).await;
    let want = desired(least_roles());
    let first = ensure_all(&client, &want).await.csi_api_key.unwrap();
    let user = &client
        .users(&[Filter::eq("username", USERNAME)])
        .await
        .unwrap()[0];
    client.delete_user(user.id).await.unwrap();
    assert!(!Raw::login(&nas, first.key.expose_secret()).await.1);

    let plan = ensure::plan(&client, &want).await.unwrap();
    let kinds: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        kinds,
        [
            "user kiln-csi-lab: create (democratic-csi's service account, no password)".to_owned(),
            format!(
                "privilege #4: grant to {USERNAME}'s group only; add roles nothing; remove roles nothing"
            ),
            format!(
                "API key #{} (kiln's; its user is gone): delete",
                first.key_id
            ),
            "API key for kiln-csi-lab: create (secret ********)".to_owned(),
        ]
    );
    let second = ensure::apply(&client, plan)
        .await
        .unwrap()
        .csi_api_key
        .unwrap();
    assert_ne!(second.key_id, first.key_id);
    let (mut csi, ok) = Raw::login(&nas, second.key.expose_secret()).await;
    assert!(ok);
    assert!(!refused_for_roles(
        &csi.call("iscsi.extent.query", json!([])).await
    ));
    nas.shutdown().await;
}

#[tokio::test]
async fn kilns_own_least_privileged_key_can_keep_the_account() {
    let nas = start_nas(TruenasFaults::default()).await;
    let admin = connect(&nas).await;
    // kiln's own key, with exactly KILN_ROLES and KILN_CSI_ACCOUNT_ROLES.
    let kiln_user = admin
        .create_service_user(&NewServiceUser {
            username: "kiln".into(),
            full_name: "kiln".into(),
        })
        .await
        .unwrap();
    let roles: Vec<String> = KILN_ROLES
        .iter()
        .chain(KILN_CSI_ACCOUNT_ROLES)
        .map(|r| (*r).to_owned())
        .collect();
    admin
        .create_privilege(&NewPrivilege {
            name: "kiln".into(),
            local_groups: vec![kiln_user.group.gid],
            roles,
            web_shell: false,
        })
        .await
        .unwrap();
    let (_, kiln_key) = admin
        .create_api_key(&NewApiKey {
            name: "kiln".into(),
            username: "kiln".into(),
        })
        .await
        .unwrap();
    let mut config = client_config(&nas);
    config.api_key = kiln_key;
    config.username = Some("kiln".to_owned());
    let kiln = TruenasClient::connect(config).await.unwrap();

    let want = desired(least_roles());
    let ids = ensure_all(&kiln, &want).await;
    assert!(ids.csi_api_key.is_some());
    assert!(ensure::plan(&kiln, &want).await.unwrap().changes.is_empty());
    ensure::rotate_csi_key(&kiln, USERNAME).await.unwrap();
    nas.shutdown().await;
}
