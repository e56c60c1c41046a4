//! The qemu backend with real guests (QEMU, the debian-12 golden image, cloud-init,
//! qemu-guest-agent, sshd), driven through the PVE API like kiln drives a Proxmox:
//! upload → create with import-from → template → linked clone → cloud-init keys → start →
//! agent → SSH from inside the lab's namespace → stop → delete → `kiln-lab down`.
//! And a QEMU that dies on its own shows as stopped; `down` after a SIGKILLed `serve` removes
//! everything.
//!
//! Needs root, qemu-system-x86, qemu-utils and iproute2 (`cargo xtask setup`). The API is
//! reached through `serve --publish 127.0.0.1:0` (host loopback); SSH runs inside the
//! namespace through `kiln-lab exec`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kiln-lab");
/// Boot to an agent answering with the static address: TCG on a loaded 2-core machine can
/// take minutes (bounded polling, not a timing goal; the test prints the time taken).
const BOOT_BUDGET: Duration = Duration::from_secs(600);

/// A `kiln-lab serve --backend qemu`; dropping it runs `kiln-lab down` (so a failing test
/// leaves no namespace, QEMU or disk behind) and reaps the process.
struct QemuLab {
    child: Child,
    data: PathBuf,
    credentials: PathBuf,
    namespace: String,
}

impl QemuLab {
    fn serve(dir: &Path, instance: &str) -> Self {
        let data = dir.join("data");
        let credentials = dir.join("credentials.json");
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--backend", "qemu", "--nodes", "1"])
            .args(["--instance", instance, "--publish", "127.0.0.1:0"])
            .args(["--task-duration", "50ms"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--credentials-out")
            .arg(&credentials)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let lab = Self {
            child,
            data,
            credentials,
            namespace: format!("kiln-lab-{instance}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !lab.credentials.exists() {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "serve never got ready:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        lab
    }

    fn credentials(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.credentials).unwrap()).unwrap()
    }

    fn down(&self) -> std::process::Output {
        Command::new(BIN)
            .args(["down", "--data-dir"])
            .arg(&self.data)
            .output()
            .unwrap()
    }

    /// Every trace of the lab is gone: namespace, QEMU processes, data directory.
    fn assert_gone(&self) {
        let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let namespaces = String::from_utf8_lossy(&namespaces.stdout);
        assert!(
            !namespaces
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&self.namespace)),
            "namespace left: {namespaces}"
        );
        assert_eq!(qemu_processes(&self.data), Vec::<u32>::new(), "QEMU left");
        assert!(!self.data.exists(), "{} left", self.data.display());
        assert!(!self.credentials.exists(), "credentials file left");
    }
}

impl Drop for QemuLab {
    fn drop(&mut self) {
        if self.data.exists() {
            let _ = self.down();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// QEMU processes whose command line names a file under `data`.
fn qemu_processes(data: &Path) -> Vec<u32> {
    let marker = data.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let text = String::from_utf8_lossy(&c).replace('\0', " ");
                text.starts_with("qemu-system-x86_64") && text.contains(&marker)
            })
        })
        .collect()
}

struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    fn new(credentials: &Value) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The lab's certificate is self-signed; this test is about guests, not TLS (the
        // sim tests pin the certificate).
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let endpoint = credentials["published_endpoint"].as_str().unwrap();
        assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
        assert!(
            credentials["endpoint"]
                .as_str()
                .unwrap()
                .starts_with("https://10.77.0.1:8006"),
            "{credentials}"
        );
        Self {
            http,
            base: format!("{endpoint}/api2/json"),
            auth: format!(
                "PVEAPIToken={}={}",
                credentials["token_id"].as_str().unwrap(),
                credentials["token_secret"].as_str().unwrap()
            ),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let response = rb.header("Authorization", &self.auth).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
            .await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Runs a task-returning call and waits for the task to end `OK`.
    async fn task(&self, reply: (u16, Value)) {
        let (status, body) = reply;
        assert_eq!(status, 200, "{body}");
        let upid = body["data"].as_str().expect("a UPID").to_string();
        let node = upid.split(':').nth(1).unwrap().to_string();
        let encoded: String =
            percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let (_, status) = self
                .get(&format!("/nodes/{node}/tasks/{encoded}/status"))
                .await;
            if status["data"]["status"] == "stopped" {
                let (_, log) = self
                    .get(&format!("/nodes/{node}/tasks/{encoded}/log?limit=500"))
                    .await;
                assert_eq!(status["data"]["exitstatus"], "OK", "task {upid}: {log}");
                return;
            }
            assert!(Instant::now() < deadline, "task {upid} never ended");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn golden_image() -> PathBuf {
    let recipe = kiln_images::Recipe::named("debian-12").unwrap();
    let cache = kiln_images::Cache::default_location().unwrap();
    kiln_images::build(&recipe, &cache, &mut |stage| {
        eprintln!("golden image: {stage}")
    })
    .unwrap()
    .path
}

fn ssh_keypair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "kiln@qemu-test",
            "-f",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

fn serial_log(lab: &QemuLab, vmid: u32) -> String {
    std::fs::read_to_string(lab.data.join(format!("vms/{vmid}/serial.log"))).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_clone_boots_with_cloud_init_answers_the_agent_and_takes_ssh() {
    let image = tokio::task::spawn_blocking(golden_image).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = ssh_keypair(dir.path());
    let lab = QemuLab::serve(dir.path(), &format!("qg{}", std::process::id()));
    let api = Api::new(&lab.credentials());

    let bytes = tokio::fs::read(&image).await.unwrap();
    let form = reqwest::multipart::Form::new()
        .text("content", "import")
        .part(
            "filename",
            reqwest::multipart::Part::bytes(bytes).file_name("debian-12.qcow2"),
        );
    api.task(
        api.send(
            api.http
                .post(format!("{}/nodes/pve1/storage/local/upload", api.base))
                .multipart(form),
        )
        .await,
    )
    .await;
    let storage = lab.data.join("storage/pve1");
    assert!(storage.join("local/import/debian-12.qcow2").is_file());

    api.task(
        api.post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "9000"),
                ("name", "debian-12"),
                ("memory", "1024"),
                ("cores", "2"),
                ("scsihw", "virtio-scsi-single"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/debian-12.qcow2",
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("boot", "order=scsi0"),
                ("serial0", "socket"),
                ("vga", "serial0"),
                ("agent", "1"),
                ("net0", "virtio,bridge=vmbr0"),
            ],
        )
        .await,
    )
    .await;
    api.task(api.post("/nodes/pve1/qemu/9000/template", &[]).await)
        .await;
    let base = storage.join("local-lvm/base-9000-disk-0.qcow2");
    assert!(
        base.is_file(),
        "template disk not renamed to base-9000-disk-0"
    );

    api.task(
        api.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "web1"), ("full", "0")],
        )
        .await,
    )
    .await;
    let overlay = storage.join("local-lvm/vm-101-disk-0.qcow2");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&overlay)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        info["backing-filename"].as_str(),
        Some(base.to_str().unwrap()),
        "a linked clone is an overlay on the base: {info}"
    );

    let sshkeys: String =
        percent_encoding::utf8_percent_encode(&public, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    api.task(
        api.post(
            "/nodes/pve1/qemu/101/config",
            &[
                ("ciuser", "kiln"),
                ("sshkeys", &sshkeys),
                ("ipconfig0", "ip=10.77.0.21/24,gw=10.77.0.1"),
                ("ciupgrade", "0"),
            ],
        )
        .await,
    )
    .await;
    api.task(api.post("/nodes/pve1/qemu/101/status/start", &[]).await)
        .await;
    let (_, current) = api.get("/nodes/pve1/qemu/101/status/current").await;
    assert_eq!(current["data"]["status"], "running", "{current}");
    assert_eq!(qemu_processes(&lab.data).len(), 1);

    let started = Instant::now();
    let interfaces = loop {
        let (status, body) = api
            .get("/nodes/pve1/qemu/101/agent/network-get-interfaces")
            .await;
        if status == 200 && body.to_string().contains("\"10.77.0.21\"") {
            break body;
        }
        assert!(
            started.elapsed() < BOOT_BUDGET,
            "no agent with 10.77.0.21 after {BOOT_BUDGET:?} (last: {status} {body}); serial:\n{}",
            serial_log(&lab, 101)
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    eprintln!("start to agent with address: {:.0?}", started.elapsed());
    let eth = interfaces["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.to_string().contains("10.77.0.21"))
        .unwrap()
        .clone();
    let (_, config) = api.get("/nodes/pve1/qemu/101/config").await;
    let mac = config["data"]["net0"]
        .as_str()
        .unwrap()
        .split(['=', ','])
        .nth(1)
        .unwrap()
        .to_lowercase();
    assert_eq!(eth["hardware-address"], mac.as_str(), "{eth}");

    let (status, hostname) = api
        .get("/nodes/pve1/qemu/101/agent/file-read?file=/etc/hostname")
        .await;
    assert_eq!(status, 200, "{hostname}");
    assert_eq!(hostname["data"]["content"], "web1\n", "{hostname}");
    assert_eq!(hostname["data"]["bytes-read"], 5, "{hostname}");
    let (status, missing) = api
        .get("/nodes/pve1/qemu/101/agent/file-read?file=/nonexistent")
        .await;
    assert_eq!(status, 500, "{missing}");

    let mut ssh_output = None;
    for _ in 0..20 {
        let out = Command::new(BIN)
            .arg("exec")
            .arg("--credentials")
            .arg(&lab.credentials)
            .args(["--", "ssh", "-i"])
            .arg(&key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "kiln@10.77.0.21",
                "hostname",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            ssh_output = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
            break;
        }
        eprintln!(
            "ssh not yet: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert_eq!(ssh_output.as_deref(), Some("web1"));

    api.task(api.post("/nodes/pve1/qemu/101/status/stop", &[]).await)
        .await;
    assert_eq!(qemu_processes(&lab.data), Vec::<u32>::new());
    api.task(api.delete("/nodes/pve1/qemu/101").await).await;
    assert!(!overlay.exists(), "the clone's disk outlived the VM");
    assert!(
        base.is_file(),
        "the template's base disk went with the clone"
    );

    let down = lab.down();
    assert!(down.status.success(), "{down:?}");
    lab.assert_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_after_a_killed_serve_removes_namespace_qemu_and_disks() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = QemuLab::serve(dir.path(), &format!("qk{}", std::process::id()));
    let api = Api::new(&lab.credentials());
    // A blank disk: the guest sits in the firmware, which is all this test needs.
    api.task(
        api.post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "100"),
                ("memory", "256"),
                ("scsi0", "local-lvm:1"),
                ("net0", "virtio,bridge=vmbr0"),
            ],
        )
        .await,
    )
    .await;
    api.task(api.post("/nodes/pve1/qemu/100/status/start", &[]).await)
        .await;
    // A QEMU that goes away on its own (a guest powering off) shows as stopped...
    let first = qemu_processes(&lab.data);
    assert_eq!(first.len(), 1);
    Command::new("kill")
        .args(["-KILL", &first[0].to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, current) = api.get("/nodes/pve1/qemu/100/status/current").await;
        if current["data"]["status"] == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {current}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and starts again.
    api.task(api.post("/nodes/pve1/qemu/100/status/start", &[]).await)
        .await;
    assert_eq!(qemu_processes(&lab.data).len(), 1);
    assert!(
        lab.data
            .join("storage/pve1/local-lvm/vm-100-disk-0.qcow2")
            .is_file()
    );

    lab.child.kill().unwrap();
    lab.child.wait().unwrap();
    // SIGKILL leaves everything behind: that is what `down` is for.
    assert_eq!(qemu_processes(&lab.data).len(), 1);
    assert!(Path::new("/run/netns").join(&lab.namespace).exists());

    let down = lab.down();
    assert!(down.status.success(), "{down:?}");
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(said.contains("killed QEMU process"), "{said}");
    lab.assert_gone();
}
