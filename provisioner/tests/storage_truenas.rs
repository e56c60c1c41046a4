//! kiln's side of TrueNAS against the emulator (API only, no nodes):
//! democratic-csi's key is made, stored the moment TrueNAS hands it out,
//! really limited to the driver's roles, recovered by a reset when the
//! store lost it, and rotated by `kiln secrets rotate` — and a settled
//! NAS makes no change at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kiln::engine::{StorageRun, storage_plan};
use kiln::secrets::ClusterSecrets;
use kiln::storage::{StorageSetup, connect, keep_csi_key};
use kiln_lab::truenas::{RunningTruenas, TruenasConfig, start};
use kiln_secrets::file::single_value;
use kiln_secrets::generated::{CSI_KEY_ENTRY, truenas_csi_key};
use kiln_secrets::{Cas, Dirs, FileStore, SecretStore};
use kiln_truenas::ensure;
use kiln_truenas::{ClientConfig, TruenasClient};
use secrecy::{ExposeSecret, SecretString};

struct Fixture {
    nas: RunningTruenas,
    root: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let nas = start(TruenasConfig::default()).await.unwrap();
        let root = tempfile::tempdir().unwrap();
        Self { nas, root }
    }

    /// The state of one machine kiln runs on, holding kiln's NAS key.
    async fn machine(&self, name: &str) -> Dirs {
        let dirs = Dirs {
            state: self.root.path().join(name).join("state"),
            config: self.root.path().join(name).join("config"),
        };
        let store = FileStore::new(&dirs, "home");
        if store.read("nas-key").await.unwrap().is_none() {
            store
                .write(
                    "nas-key",
                    single_value(self.nas.api_key().to_owned().into()),
                    Cas::Absent,
                )
                .await
                .unwrap();
        }
        dirs
    }

    fn inventory_path(&self) -> PathBuf {
        let path = self.root.path().join("kiln.yaml");
        let text = format!(
            "cluster: {{name: home}}
network: {{ipv4: {{cidr: 10.0.0.0/24, gateway: 10.0.0.1}}}}
nodes:
  - {{name: a, role: host, ip: 10.0.0.11, baremetal: {{}}}}
storage:
  truenas:
    endpoint: {}
    api_key: file:nas-key
    tls: {{fingerprint: '{}'}}
    iscsi: {{portal: 0.0.0.0:3260, dataset: tank/k8s/iscsi}}
    nfs: {{server: 127.0.0.1, dataset: tank/k8s/nfs}}
",
            self.nas.endpoint, self.nas.fingerprint
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn setup(&self, dirs: &Dirs) -> (StorageSetup, ClusterSecrets) {
        let inventory = kiln_inventory::load(&self.inventory_path()).unwrap();
        let secrets = ClusterSecrets::open(&inventory, dirs).await.unwrap();
        let setup = connect(&inventory, &secrets).await.unwrap().unwrap();
        (setup, secrets)
    }

    /// Prepares the NAS as the `truenas` step does; returns whether it
    /// stored a key.
    async fn prepare(&self, setup: &StorageSetup) -> bool {
        let plan = ensure::plan(&setup.client, &setup.desired).await.unwrap();
        let ids = ensure::apply(&setup.client, plan).await.unwrap();
        keep_csi_key(setup, &ids).await.unwrap()
    }

    async fn stored_key(&self, secrets: &ClusterSecrets) -> SecretString {
        truenas_csi_key(secrets.store())
            .await
            .unwrap()
            .expect("a stored key")
            .0
    }

    async fn login(&self, key: &SecretString) -> Result<TruenasClient, kiln_truenas::Error> {
        let pin = self.nas.fingerprint.parse().unwrap();
        TruenasClient::connect(ClientConfig::new(
            self.nas.endpoint.clone(),
            key.clone(),
            kiln_tls::Trust::Pin(pin),
        ))
        .await
    }

    fn changing_calls(&self, since: usize) -> Vec<String> {
        self.nas.calls()[since..]
            .iter()
            .filter(|call| call.mutating())
            .map(|call| call.method.clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csi_key_is_made_stored_limited_and_a_settled_nas_is_left_alone() {
    let fixture = Fixture::new().await;
    let (setup, secrets) = fixture.setup(&fixture.machine("one").await).await;
    assert!(
        fixture.prepare(&setup).await,
        "the first apply stores a key"
    );
    let key = fixture.stored_key(&secrets).await;
    assert!(!key.expose_secret().contains(fixture.nas.api_key()));

    let driver = fixture.login(&key).await.expect("the stored key logs in");
    driver
        .datasets(&[])
        .await
        .expect("the driver's key reads datasets");
    let denied = driver
        .create_portal(&kiln_truenas::NewPortal {
            listen: vec![kiln_truenas::PortalIp {
                ip: "10.0.0.6".to_owned(),
            }],
            comment: "not the driver's".to_owned(),
        })
        .await
        .expect_err("the driver's key may not make portals");
    assert!(denied.to_string().contains("EACCES"), "{denied}");

    let before = fixture.nas.calls().len();
    assert!(
        !fixture.prepare(&setup).await,
        "a settled NAS stores no new key"
    );
    assert_eq!(fixture.changing_calls(before), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_key_is_replaced_by_a_reset_and_rotation_goes_through_truenas() {
    let fixture = Fixture::new().await;
    let (setup, secrets) = fixture.setup(&fixture.machine("one").await).await;
    fixture.prepare(&setup).await;
    let first = fixture.stored_key(&secrets).await;

    // A new kiln machine, whose store holds no CSI key: its apply resets it.
    let other = fixture.machine("two").await;
    let (setup, secrets) = fixture.setup(&other).await;
    let run = StorageRun::new(setup);
    let planned = storage_plan(&run).await.unwrap();
    assert_eq!(
        planned.changes,
        ["API key of kiln-csi-home: reset (kiln's store holds none)"],
        "the plan says what the apply will do"
    );
    let setup = run.setup;
    assert!(fixture.prepare(&setup).await, "the lost key is replaced");
    let second = fixture.stored_key(&secrets).await;
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert!(fixture.login(&first).await.is_err(), "the old key is dead");
    assert!(fixture.login(&second).await.is_ok());

    // `kiln secrets rotate`: TrueNAS makes the new key; nothing prints it.
    let output = kiln(
        &other,
        &fixture.inventory_path(),
        &["secrets", "rotate", CSI_KEY_ENTRY],
    );
    let third = fixture.stored_key(&secrets).await;
    assert_ne!(third.expose_secret(), second.expose_secret());
    assert!(
        fixture.login(&second).await.is_err(),
        "the rotated key is dead"
    );
    assert!(fixture.login(&third).await.is_ok());
    for key in [&second, &third] {
        assert!(
            !output.contains(key.expose_secret()),
            "a CSI key in kiln's output"
        );
    }
    assert!(
        !output.contains(fixture.nas.api_key()),
        "kiln's own key in its output"
    );
}

/// `kiln --log-level trace -o json --yes ARGS -i INVENTORY`, which must succeed.
fn kiln(dirs: &Dirs, inventory: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["--log-level", "trace", "-o", "json", "--yes"])
        .args(args)
        .arg("-i")
        .arg(inventory)
        .env("KILN_STATE_DIR", &dirs.state)
        .env("KILN_CONFIG_DIR", &dirs.config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{printed}");
    printed
}
