//! The Vault backend's TLS trust (CA file, SHA-256 pin, refusal of an
//! unknown certificate) and namespaces, against a real OpenBao dev server
//! (`-dev-tls` makes its own CA and certificate).

// Test helpers set up fixtures: a failed setup should stop the test.
#![allow(clippy::unwrap_used)]

#[path = "../../clients/secrets/tests/secrets_bao/mod.rs"]
mod secrets_bao;

use kiln::secrets::ClusterSecrets;
use kiln_secrets::file::single_value;
use kiln_secrets::{Cas, Dirs, FileStore, SecretStore};
use secrets_bao::{Bao, ROOT_TOKEN, chain, one, server_fingerprint};

#[tokio::test]
async fn the_inventory_pin_reaches_the_client() {
    let bao = Bao::start_tls().await;
    let root = tempfile::tempdir().unwrap();
    let dirs = Dirs {
        state: root.path().join("state"),
        config: root.path().join("config"),
    };
    FileStore::new(&dirs, "home")
        .write("vault-token", single_value(ROOT_TOKEN.into()), Cas::Any)
        .await
        .unwrap();
    let inventory = |fingerprint: String| {
        let text = format!(
            "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: node1, role: host, ip: 10.0.0.10, baremetal: {{}}}}
secrets:
  backend: vault
  vault:
    address: {}
    fingerprint: '{fingerprint}'
    auth: {{method: token, token: 'file:vault-token'}}
",
            bao.address
        );
        kiln_inventory::parse("kiln.yaml", &text).unwrap()
    };
    let right = inventory(server_fingerprint(&bao).to_string());
    let secrets = ClusterSecrets::open(&right, &dirs).await.unwrap();
    secrets
        .store()
        .write("k", one("v", "pinned"), Cas::Any)
        .await
        .unwrap();

    let wrong = inventory(kiln_tls::Fingerprint::from_bytes([9; 32]).to_string());
    let secrets = ClusterSecrets::open(&wrong, &dirs).await.unwrap();
    match secrets.store().read("k").await {
        Ok(_) => panic!("a wrong pin was accepted"),
        Err(error) => assert!(chain(&error).contains("fingerprint mismatch")),
    }
}
