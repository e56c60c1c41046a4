//! PVE behaviour of the sim backend: clone locks, `already exists`, linked/full clone rules,
//! tasks, agent timing, cloud-init, resize, delete. These describe PVE 9.1 as documented in
//! `shared/reference/notes/proxmox.md`; they pass against the emulator (kiln-lab sim) only.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{encode, lab_with_template, lab_with_timing};
use serde_json::Value;

const UPID_RE: &str = r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$";

fn upid(reply: &common::Reply) -> String {
    assert_eq!(reply.status, 200, "{} {}", reply.reason, reply.body);
    reply.body["data"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_cloning_vm_is_locked_until_the_task_ends() {
    let lab = lab_with_timing(Duration::from_secs(3), Duration::from_millis(100)).await;
    let clone = lab
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("name", "web1")],
        )
        .await;
    let upid = upid(&clone);
    // The new VMID exists at once, locked.
    let current = lab.get("/nodes/pve1/qemu/101/status/current").await;
    assert_eq!(current.body["data"]["lock"], "clone");
    let resources = lab.get("/cluster/resources?type=vm").await;
    let entry = resources.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vmid"] == 101)
        .cloned()
        .unwrap();
    assert_eq!(entry["lock"], "clone");
    let put = lab
        .put("/nodes/pve1/qemu/101/config", &[("cores", "2")])
        .await;
    assert_eq!(put.status, 500);
    assert_eq!(put.reason, "VM is locked (clone)");
    assert_eq!(put.body["message"], "VM is locked (clone)\n");
    let again = lab
        .post(
            "/nodes/pve1/qemu/101/clone",
            &[("newid", "102"), ("full", "1")],
        )
        .await;
    assert_eq!(again.reason, "VM is locked (clone)");
    let start = lab.post("/nodes/pve1/qemu/101/status/start", &[]).await;
    assert_eq!(start.reason, "VM is locked (clone)");
    // Once the task ends: unlocked, configured, new MAC, linked disk.
    let status = lab.wait(&upid).await;
    assert_eq!(status["exitstatus"], "OK");
    let config = lab.get("/nodes/pve1/qemu/101/config").await.body["data"].clone();
    assert!(config.get("lock").is_none(), "{config}");
    assert!(config.get("template").is_none());
    assert_eq!(config["name"], "web1");
    let template = lab.get("/nodes/pve1/qemu/9000/config").await.body["data"].clone();
    assert_ne!(config["net0"], template["net0"]);
    assert!(
        config["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=BC:24:11:")
    );
    assert!(
        config["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9000-disk-0/vm-101-disk-0")
    );
    assert!(
        config["ide2"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-101-cloudinit")
    );
    null_ok(
        lab.put("/nodes/pve1/qemu/101/config", &[("cores", "2")])
            .await,
    );
}

/// `PUT config` is synchronous: 200 with `data: null`.
fn null_ok(reply: common::Reply) {
    assert_eq!(reply.status, 200, "{} {}", reply.reason, reply.body);
    assert_eq!(reply.body["data"], Value::Null);
}

#[tokio::test]
async fn taken_vmids_are_refused_with_already_exists() {
    let lab = lab_with_template().await;
    let nextid = lab.get("/cluster/nextid").await;
    assert_eq!(nextid.body["data"], "100");
    let taken = lab.get("/cluster/nextid?vmid=9000").await;
    assert_eq!(taken.status, 400);
    assert_eq!(taken.body["errors"]["vmid"], "VM 9000 already exists");
    let clone = lab
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "9000")])
        .await;
    assert_eq!(clone.status, 500);
    assert!(clone.reason.contains("already exists"), "{}", clone.reason);
    let create = lab.post("/nodes/pve2/qemu", &[("vmid", "9000")]).await;
    assert_eq!(create.status, 500);
    assert_eq!(
        create.reason,
        "unable to create VM 9000 - VM 9000 already exists on node 'pve1'"
    );
}

#[tokio::test]
async fn clone_rules_linked_full_storage_and_target() {
    let lab = lab_with_template().await;
    let linked_with_storage = lab
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("storage", "local-lvm")],
        )
        .await;
    assert_eq!(linked_with_storage.status, 400);
    assert_eq!(
        linked_with_storage.body["errors"]["storage"],
        "parameter 'storage' not allowed for linked clones"
    );
    let pool = lab
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("pool", "kiln")],
        )
        .await;
    assert_eq!(pool.reason, "pool 'kiln' does not exist");
    let cross_node = lab
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "101"), ("target", "pve2")],
        )
        .await;
    assert_eq!(
        cross_node.reason,
        "can't clone VM to node 'pve2' (VM uses local storage)"
    );
    let full = lab
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[
                ("newid", "101"),
                ("full", "1"),
                ("storage", "local-lvm"),
                ("name", "full1"),
            ],
        )
        .await;
    lab.ok_task(full).await;
    let config = lab.get("/nodes/pve1/qemu/101/config").await.body["data"].clone();
    assert!(
        config["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-101-disk-0,"),
        "{config}"
    );
    // A normal VM can only be fully cloned.
    let linked_from_vm = lab
        .post(
            "/nodes/pve1/qemu/101/clone",
            &[("newid", "102"), ("full", "0")],
        )
        .await;
    assert_eq!(linked_from_vm.status, 500);
    let full_from_vm = lab
        .post("/nodes/pve1/qemu/101/clone", &[("newid", "102")])
        .await;
    lab.ok_task(full_from_vm).await;
    let config = lab.get("/nodes/pve1/qemu/102/config").await.body["data"].clone();
    assert_eq!(config["name"], "Copy-of-VM-full1");
    let wrong_node = lab.get("/nodes/pve2/qemu/101/config").await;
    assert_eq!(
        wrong_node.reason,
        "Configuration file 'nodes/pve2/qemu-server/101.conf' does not exist"
    );
}

#[tokio::test]
async fn task_lifecycle_status_log_and_upid() {
    let lab = lab_with_timing(Duration::from_secs(2), Duration::from_millis(100)).await;
    let upid = upid(
        &lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "150")])
            .await,
    );
    assert!(
        regex::Regex::new(UPID_RE).unwrap().is_match(&upid),
        "{upid}"
    );
    let fields: Vec<&str> = upid.split(':').collect();
    assert_eq!(fields[1], "pve1");
    assert_eq!(fields[5], "qmclone");
    assert_eq!(fields[6], "9000");
    assert_eq!(fields[7], "kiln@pve!kiln");
    let path = format!("/nodes/pve1/tasks/{}/status", encode(&upid));
    let running = lab.get(&path).await.body["data"].clone();
    assert_eq!(running["status"], "running");
    assert!(running.get("exitstatus").is_none());
    assert_eq!(running["user"], "kiln@pve");
    assert_eq!(running["tokenid"], "kiln");
    assert_eq!(running["type"], "qmclone");
    let stopped = lab.wait(&upid).await;
    assert_eq!(stopped["exitstatus"], "OK");
    let log = lab
        .get(&format!("/nodes/pve1/tasks/{}/log", encode(&upid)))
        .await;
    let lines = log.body["data"].as_array().unwrap();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(log.body["total"], lines.len());
    // Asking the wrong node.
    let wrong = lab
        .get(&format!("/nodes/pve2/tasks/{}/status", encode(&upid)))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["errors"]["upid"], "no such task");
    // A task that fails: start a VM that is already running.
    lab.ok_task(lab.post("/nodes/pve1/qemu/150/status/start", &[]).await)
        .await;
    let again = upid_of(lab.post("/nodes/pve1/qemu/150/status/start", &[]).await);
    let failed = lab.wait(&again).await;
    assert_eq!(failed["exitstatus"], "VM 150 already running");
    let log = lab
        .get(&format!("/nodes/pve1/tasks/{}/log", encode(&again)))
        .await;
    let last = log.body["data"].as_array().unwrap().last().unwrap()["t"].clone();
    assert_eq!(last, "TASK ERROR: VM 150 already running");
}

fn upid_of(reply: common::Reply) -> String {
    upid(&reply)
}

#[tokio::test]
async fn agent_answers_after_the_boot_delay_with_the_configured_ip() {
    let lab = lab_with_timing(Duration::from_millis(100), Duration::from_secs(3)).await;
    lab.ok_task(
        lab.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "201"), ("name", "db1")],
        )
        .await,
    )
    .await;
    let stopped = lab.post("/nodes/pve1/qemu/201/agent/ping", &[]).await;
    assert_eq!(stopped.reason, "VM 201 is not running");
    null_ok(
        lab.put(
            "/nodes/pve1/qemu/201/config",
            &[("ipconfig0", "ip=10.20.0.11/24,gw=10.20.0.1")],
        )
        .await,
    );
    lab.ok_task(lab.post("/nodes/pve1/qemu/201/status/start", &[]).await)
        .await;
    let current = lab.get("/nodes/pve1/qemu/201/status/current").await.body["data"].clone();
    assert_eq!(current["status"], "running");
    assert_eq!(current["agent"], 1);
    let early = lab.post("/nodes/pve1/qemu/201/agent/ping", &[]).await;
    assert_eq!(early.status, 500);
    assert_eq!(early.reason, "QEMU guest agent is not running");
    assert_eq!(
        early.body,
        serde_json::json!({"data": null, "message": "QEMU guest agent is not running\n"})
    );
    let early = lab
        .get("/nodes/pve1/qemu/201/agent/network-get-interfaces")
        .await;
    assert_eq!(early.reason, "QEMU guest agent is not running");
    let mut ping = lab.post("/nodes/pve1/qemu/201/agent/ping", &[]).await;
    for _ in 0..200 {
        if ping.status == 200 {
            break;
        }
        assert_eq!(ping.reason, "QEMU guest agent is not running");
        tokio::time::sleep(Duration::from_millis(50)).await;
        ping = lab.post("/nodes/pve1/qemu/201/agent/ping", &[]).await;
    }
    assert_eq!(ping.status, 200, "the agent never came up");
    assert_eq!(ping.body["data"], serde_json::json!({"result": {}}));
    let nics = lab
        .get("/nodes/pve1/qemu/201/agent/network-get-interfaces")
        .await;
    let config = lab.get("/nodes/pve1/qemu/201/config").await.body["data"].clone();
    let mac = config["net0"].as_str().unwrap()[7..24].to_lowercase();
    let eth0 = nics.body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["hardware-address"] == mac.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no interface with {mac}: {}", nics.body));
    assert!(
        eth0["ip-addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ip-address"] == "10.20.0.11" && a["prefix"] == 24),
        "{eth0}"
    );
    let hostname = lab
        .get("/nodes/pve1/qemu/201/agent/file-read?file=/etc/hostname")
        .await;
    assert_eq!(hostname.body["data"]["content"], "db1\n");
    let missing = lab
        .get("/nodes/pve1/qemu/201/agent/file-read?file=/nope")
        .await;
    assert_eq!(missing.status, 500);
}

#[tokio::test]
async fn cloud_init_keys_tags_and_sshkeys_are_kept_and_rendered_at_start() {
    let lab = lab_with_template().await;
    lab.ok_task(
        lab.post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "301"), ("name", "k8s-cp1")],
        )
        .await,
    )
    .await;
    let key = kiln_lab_core::ed25519_public_key(b"test", "ops@lab");
    let escaped = encode(&format!("{key}\n"));
    let reply = lab
        .post(
            "/nodes/pve1/qemu/301/config",
            &[
                ("ciuser", "kiln"),
                ("cipassword", "s3cret-pw"),
                ("sshkeys", escaped.as_str()),
                ("ipconfig0", "ip=10.0.0.21/24,gw=10.0.0.1"),
                ("nameserver", "10.0.0.1"),
                ("searchdomain", "lab.example"),
                ("tags", "kiln-prod, k8s;control-plane"),
                ("description", "kiln: node=cp1\nrun=42"),
            ],
        )
        .await;
    lab.ok_task(reply).await;
    let config = lab.get("/nodes/pve1/qemu/301/config").await.body["data"].clone();
    assert_eq!(config["tags"], "control-plane;k8s;kiln-prod");
    assert_eq!(config["description"], "kiln: node=cp1\nrun=42");
    assert_eq!(config["cipassword"], "**********");
    assert_eq!(config["sshkeys"], escaped.as_str());
    let bad = lab
        .put(
            "/nodes/pve1/qemu/301/config",
            &[("sshkeys", "ssh-ed25519%20notakey")],
        )
        .await;
    assert_eq!(bad.status, 500);
    assert_eq!(bad.reason, "SSH public key validation error");
    let user = lab
        .get("/nodes/pve1/qemu/301/cloudinit/dump?type=user")
        .await
        .body["data"]
        .clone();
    let user = user.as_str().unwrap();
    assert!(user.contains(&format!("  - {key}\n")), "{user}");
    assert!(user.contains("user: kiln\n"));
    assert!(user.contains("fqdn: k8s-cp1.lab.example\n"));
    let network = lab
        .get("/nodes/pve1/qemu/301/cloudinit/dump?type=network")
        .await
        .body["data"]
        .clone();
    assert!(network.as_str().unwrap().contains("address: '10.0.0.21'"));
    assert!(lab.lab.seed_at_last_start(301).is_none());
    lab.ok_task(lab.post("/nodes/pve1/qemu/301/status/start", &[]).await)
        .await;
    let seed = lab.lab.seed_at_last_start(301).unwrap();
    assert!(seed.user_data.contains(&key));
    // cicustom snippets must exist when the VM starts.
    lab.ok_task(lab.post("/nodes/pve1/qemu/301/status/stop", &[]).await)
        .await;
    null_ok(
        lab.put(
            "/nodes/pve1/qemu/301/config",
            &[("cicustom", "user=local:snippets/cp1.yaml")],
        )
        .await,
    );
    let start = upid_of(lab.post("/nodes/pve1/qemu/301/status/start", &[]).await);
    assert_eq!(
        lab.wait(&start).await["exitstatus"],
        "volume 'local:snippets/cp1.yaml' does not exist"
    );
    lab.lab
        .add_snippet("local:snippets/cp1.yaml", "#cloud-config\nruncmd: [true]\n");
    lab.ok_task(lab.post("/nodes/pve1/qemu/301/status/start", &[]).await)
        .await;
    assert_eq!(
        lab.lab.seed_at_last_start(301).unwrap().user_data,
        "#cloud-config\nruncmd: [true]\n"
    );
}

#[tokio::test]
async fn resize_grows_only_and_delete_refuses_running_vms() {
    let lab = lab_with_template().await;
    lab.ok_task(
        lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "401")])
            .await,
    )
    .await;
    lab.ok_task(
        lab.put(
            "/nodes/pve1/qemu/401/resize",
            &[("disk", "scsi0"), ("size", "+8G")],
        )
        .await,
    )
    .await;
    let config = lab.get("/nodes/pve1/qemu/401/config").await.body["data"].clone();
    assert!(
        config["scsi0"].as_str().unwrap().ends_with("size=10G"),
        "{config}"
    );
    lab.ok_task(
        lab.put(
            "/nodes/pve1/qemu/401/resize",
            &[("disk", "scsi0"), ("size", "12G")],
        )
        .await,
    )
    .await;
    let shrink = lab
        .put(
            "/nodes/pve1/qemu/401/resize",
            &[("disk", "scsi0"), ("size", "4G")],
        )
        .await;
    assert_eq!(shrink.reason, "shrinking disks is not supported");
    lab.ok_task(lab.post("/nodes/pve1/qemu/401/status/start", &[]).await)
        .await;
    let refused = lab
        .delete("/nodes/pve1/qemu/401?purge=1&destroy-unreferenced-disks=1")
        .await;
    assert_eq!(refused.reason, "VM 401 is running - destroy failed");
    lab.ok_task(lab.post("/nodes/pve1/qemu/401/status/stop", &[]).await)
        .await;
    lab.ok_task(
        lab.delete("/nodes/pve1/qemu/401?purge=1&destroy-unreferenced-disks=1")
            .await,
    )
    .await;
    let gone = lab.get("/nodes/pve1/qemu/401/status/current").await;
    assert_eq!(gone.status, 500);
    let content = lab
        .get("/nodes/pve1/storage/local-lvm/content?vmid=401")
        .await;
    assert_eq!(content.body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn create_with_import_from_then_template() {
    let lab = lab_with_template().await;
    let upload = reqwest::multipart::Form::new()
        .text("content", "import")
        .text(
            "checksum",
            "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        )
        .text("checksum-algorithm", "sha256")
        .part(
            "filename",
            reqwest::multipart::Part::bytes(b"foo".to_vec())
                .file_name("debian-12.qcow2")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let reply = lab
        .send(
            lab.http
                .post(lab.url("/nodes/pve2/storage/local/upload"))
                .multipart(upload),
        )
        .await;
    lab.ok_task(reply).await;
    let content = lab
        .get("/nodes/pve2/storage/local/content?content=import")
        .await;
    assert_eq!(
        content.body["data"][0]["volid"],
        "local:import/debian-12.qcow2"
    );
    assert_eq!(content.body["data"][0]["size"], 3);
    let create = lab
        .post(
            "/nodes/pve2/qemu",
            &[
                ("vmid", "9001"),
                ("name", "golden"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/debian-12.qcow2",
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0"),
                ("agent", "1"),
            ],
        )
        .await;
    lab.ok_task(create).await;
    lab.ok_task(lab.post("/nodes/pve2/qemu/9001/template", &[]).await)
        .await;
    let config = lab.get("/nodes/pve2/qemu/9001/config").await.body["data"].clone();
    assert_eq!(config["template"], 1);
    assert!(
        config["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9001-disk-0"),
        "{config}"
    );
    let again = lab.post("/nodes/pve2/qemu/9001/template", &[]).await;
    assert_eq!(again.status, 500);
    // A wrong checksum fails the upload task with PVE's message.
    let bad = reqwest::multipart::Form::new()
        .text("content", "iso")
        .text("checksum", "00")
        .text("checksum-algorithm", "sha256")
        .part(
            "filename",
            reqwest::multipart::Part::bytes(b"foo".to_vec()).file_name("x.iso"),
        );
    let reply = lab
        .send(
            lab.http
                .post(lab.url("/nodes/pve2/storage/local/upload"))
                .multipart(bad),
        )
        .await;
    let status = lab.wait(reply.body["data"].as_str().unwrap()).await;
    assert!(
        status["exitstatus"]
            .as_str()
            .unwrap()
            .starts_with("checksum mismatch"),
        "{status}"
    );
    // download-url never fetches; it says so with a warning.
    let download = lab
        .post(
            "/nodes/pve1/storage/local/download-url",
            &[
                ("url", "https://example.invalid/x.qcow2"),
                ("content", "import"),
                ("filename", "x.qcow2"),
            ],
        )
        .await;
    let status = lab.wait(download.body["data"].as_str().unwrap()).await;
    assert_eq!(status["exitstatus"], "WARNINGS: 1");
}

#[tokio::test]
async fn ticket_auth_needs_csrf_on_writes() {
    let lab = lab_with_template().await;
    let wrong = lab
        .http
        .post(lab.url("/access/ticket"))
        .form(&[
            ("username", lab.lab.username.as_str()),
            ("password", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let login = lab
        .http
        .post(lab.url("/access/ticket"))
        .form(&[
            ("username", lab.lab.username.as_str()),
            ("password", lab.lab.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = login.json().await.unwrap();
    let ticket = body["data"]["ticket"].as_str().unwrap().to_string();
    let csrf = body["data"]["CSRFPreventionToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ticket.starts_with("PVE:kiln@pve:"));
    let cookie = format!("PVEAuthCookie={}", encode(&ticket));
    let read = lab
        .http
        .get(lab.url("/nodes"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let no_csrf = lab
        .http
        .put(lab.url("/nodes/pve1/qemu/9000/config"))
        .header("Cookie", &cookie)
        .form(&[("cores", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status().as_u16(), 401);
    let with_csrf = lab
        .http
        .put(lab.url("/nodes/pve1/qemu/9000/config"))
        .header("Cookie", &cookie)
        .header("CSRFPreventionToken", &csrf)
        .form(&[("cores", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(with_csrf.status().as_u16(), 200);
}

#[tokio::test]
async fn create_with_start_storage_config_and_cloudinit_regeneration() {
    let lab = lab_with_template().await;
    let create = lab
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "700"),
                ("name", "started"),
                ("scsi0", "local-lvm:4"),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0"),
                ("start", "1"),
            ],
        )
        .await;
    lab.ok_task(create).await;
    let current = lab.get("/nodes/pve1/qemu/700/status/current").await.body["data"].clone();
    assert_eq!(current["status"], "running");
    assert_eq!(current["maxdisk"], 4u64 << 30);
    let storage = lab.get("/storage/local").await.body["data"].clone();
    assert_eq!(storage["path"], "/var/lib/vz");
    assert!(storage["content"].as_str().unwrap().contains("snippets"));
    null_ok(
        lab.put("/nodes/pve1/qemu/700/config", &[("ciuser", "admin")])
            .await,
    );
    assert!(
        !lab.lab
            .seed_at_last_start(700)
            .unwrap()
            .user_data
            .contains("user: admin")
    );
    null_ok(lab.put("/nodes/pve1/qemu/700/cloudinit", &[]).await);
    assert!(
        lab.lab
            .seed_at_last_start(700)
            .unwrap()
            .user_data
            .contains("user: admin")
    );
    let keys = lab.get("/nodes/pve1/qemu/700/cloudinit").await.body["data"].clone();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["key"] == "ciuser" && k["value"] == "admin")
    );
}

#[tokio::test]
async fn a_template_with_linked_clones_cannot_be_destroyed() {
    let lab = lab_with_template().await;
    lab.ok_task(
        lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "801")])
            .await,
    )
    .await;
    let destroy = upid_of(lab.delete("/nodes/pve1/qemu/9000").await);
    assert_eq!(
        lab.wait(&destroy).await["exitstatus"],
        "base volume 'base-9000-disk-0' is still in use by linked cloned"
    );
    assert_eq!(lab.get("/nodes/pve1/qemu/9000/config").await.status, 200);
    lab.ok_task(lab.delete("/nodes/pve1/qemu/801").await).await;
    lab.ok_task(lab.delete("/nodes/pve1/qemu/9000").await).await;
    let left = lab.get("/nodes/pve1/storage/local-lvm/content").await;
    assert_eq!(left.body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn uploads_larger_than_a_form_body_are_streamed_and_checked() {
    use sha2::Digest;
    let lab = lab_with_template().await;
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest: String = sha2::Sha512::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let size = data.len();
    let form = reqwest::multipart::Form::new()
        .text("content", "iso")
        .text("checksum", digest)
        .text("checksum-algorithm", "sha512")
        .part(
            "filename",
            reqwest::multipart::Part::bytes(data).file_name("big.iso"),
        );
    let reply = lab
        .send(
            lab.http
                .post(lab.url("/nodes/pve1/storage/local/upload"))
                .multipart(form),
        )
        .await;
    lab.ok_task(reply).await;
    let content = lab
        .get("/nodes/pve1/storage/local/content?content=iso")
        .await;
    assert_eq!(content.body["data"][0]["volid"], "local:iso/big.iso");
    assert_eq!(content.body["data"][0]["size"], size);
}

#[tokio::test]
async fn changes_to_a_running_vm_wait_in_pending_until_the_next_start() {
    let lab = lab_with_template().await;
    lab.ok_task(
        lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "901")])
            .await,
    )
    .await;
    lab.ok_task(lab.post("/nodes/pve1/qemu/901/status/start", &[]).await)
        .await;
    null_ok(
        lab.put(
            "/nodes/pve1/qemu/901/config",
            &[("cores", "4"), ("description", "now"), ("delete", "vga")],
        )
        .await,
    );
    let merged = lab.get("/nodes/pve1/qemu/901/config").await.body["data"].clone();
    assert_eq!(merged["cores"], 4);
    assert!(merged.get("vga").is_none());
    let current = lab.get("/nodes/pve1/qemu/901/config?current=1").await.body["data"].clone();
    assert_eq!(current["cores"], 1);
    assert_eq!(current["vga"], "serial0");
    assert_eq!(current["description"], "now");
    let pending = lab.get("/nodes/pve1/qemu/901/pending").await.body["data"].clone();
    let cores = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "cores")
        .cloned()
        .unwrap();
    assert_eq!(cores["value"], "1");
    assert_eq!(cores["pending"], "4");
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["key"] == "vga" && p["delete"] == 1)
    );
    let status = lab.get("/nodes/pve1/qemu/901/status/current").await.body["data"].clone();
    assert_eq!(status["cpus"], 1);
    lab.ok_task(lab.post("/nodes/pve1/qemu/901/status/reboot", &[]).await)
        .await;
    let status = lab.get("/nodes/pve1/qemu/901/status/current").await.body["data"].clone();
    assert_eq!(status["cpus"], 4);
    let current = lab.get("/nodes/pve1/qemu/901/config?current=1").await.body["data"].clone();
    assert!(current.get("vga").is_none());
}

#[tokio::test]
async fn tasks_can_be_listed_and_stopped() {
    let lab = lab_with_timing(Duration::from_secs(2), Duration::from_millis(100)).await;
    let clone = upid_of(
        lab.post("/nodes/pve1/qemu/9000/clone", &[("newid", "950")])
            .await,
    );
    let active = lab.get("/nodes/pve1/tasks?source=active&vmid=9000").await;
    assert_eq!(active.body["total"], 1);
    assert_eq!(active.body["data"][0]["upid"], clone.as_str());
    let stop = lab
        .delete(&format!("/nodes/pve1/tasks/{}", encode(&clone)))
        .await;
    assert_eq!(stop.status, 200, "{}", stop.body);
    let status = lab.wait(&clone).await;
    assert_eq!(status["exitstatus"], "clone failed: interrupted by signal");
    // The interrupted clone left nothing behind.
    assert_eq!(lab.get("/nodes/pve1/qemu/950/config").await.status, 500);
    let archive = lab.get("/nodes/pve1/tasks?errors=1").await;
    assert_eq!(
        archive.body["data"][0]["status"],
        "clone failed: interrupted by signal"
    );
    assert!(archive.body["data"][0]["endtime"].as_u64().is_some());
}
