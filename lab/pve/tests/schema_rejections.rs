//! Malformed requests sent raw are refused the way PVE 9.1 refuses them: HTTP 400
//! `Parameter verification failed.` naming the bad parameter; unknown paths give 501.
//! The wording is checked against pve-common's `JSONSchema.pm` messages, so these tests
//! describe the real PVE; they run against the emulator (kiln-lab sim).
#![allow(clippy::unwrap_used)]

mod common;

use common::lab_with_template;

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    param: &'static str,
    message: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "vmid not an integer",
        method: "GET",
        path: "/cluster/nextid?vmid=abc",
        form: &[],
        param: "vmid",
        message: "type check ('integer') failed - got 'abc'",
    },
    Case {
        what: "vmid below 100",
        method: "GET",
        path: "/cluster/nextid?vmid=99",
        form: &[],
        param: "vmid",
        message: "value must have a minimum value of 100",
    },
    Case {
        what: "type not in the enum",
        method: "GET",
        path: "/cluster/resources?type=vms",
        form: &[],
        param: "type",
        message: "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'",
    },
    Case {
        what: "clone name with underscore",
        method: "POST",
        path: "/nodes/pve1/qemu/9000/clone",
        form: &[("newid", "101"), ("name", "web_1")],
        param: "name",
        message: "invalid format - value does not look like a valid DNS name",
    },
    Case {
        what: "clone without newid",
        method: "POST",
        path: "/nodes/pve1/qemu/9000/clone",
        form: &[("name", "web1")],
        param: "newid",
        message: "property is missing and it is not optional",
    },
    Case {
        what: "unknown parameter",
        method: "POST",
        path: "/nodes/pve1/qemu/9000/clone",
        form: &[("newid", "101"), ("colour", "red")],
        param: "colour",
        message: "property is not defined in schema and the schema does not allow additional properties",
    },
    Case {
        what: "full not a boolean",
        method: "POST",
        path: "/nodes/pve1/qemu/9000/clone",
        form: &[("newid", "101"), ("full", "maybe")],
        param: "full",
        message: "type check ('boolean') failed - got 'maybe'",
    },
    Case {
        what: "cores not an integer",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("cores", "two")],
        param: "cores",
        message: "type check ('integer') failed - got 'two'",
    },
    Case {
        what: "net0 with an unknown sub-key",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("net0", "virtio,bridge=vmbr0,colour=red")],
        param: "net0",
        message: "net0.colour: property is not defined in schema",
    },
    Case {
        what: "net32 is past the last NIC",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("net32", "virtio,bridge=vmbr0")],
        param: "net32",
        message: "property is not defined in schema and the schema does not allow additional properties",
    },
    Case {
        what: "sshkeys not URI-escaped",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("sshkeys", "ssh-ed25519 AAAA me@host")],
        param: "sshkeys",
        message: "invalid format - invalid urlencoded string",
    },
    Case {
        what: "bad tag",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("tags", "kiln/lab")],
        param: "tags",
        message: "invalid format - invalid tag 'kiln/lab'",
    },
    Case {
        what: "ipconfig without prefix",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/config",
        form: &[("ipconfig0", "ip=10.0.0.5,gw=10.0.0.1")],
        param: "ipconfig0",
        message: "invalid format - format error",
    },
    Case {
        what: "resize size not matching the pattern",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/resize",
        form: &[("disk", "scsi0"), ("size", "10X")],
        param: "size",
        message: "value does not match the regex pattern",
    },
    Case {
        what: "resize disk not in the enum",
        method: "PUT",
        path: "/nodes/pve1/qemu/9000/resize",
        form: &[("disk", "scsi99"), ("size", "+1G")],
        param: "disk",
        message: "value 'scsi99' does not have a value in the enumeration",
    },
    Case {
        what: "path vmid not an integer",
        method: "POST",
        path: "/nodes/pve1/qemu/web1/status/start",
        form: &[],
        param: "vmid",
        message: "type check ('integer') failed - got 'web1'",
    },
    Case {
        what: "download-url content images",
        method: "POST",
        path: "/nodes/pve1/storage/local/download-url",
        form: &[
            ("url", "https://example.invalid/a.qcow2"),
            ("content", "images"),
            ("filename", "a.qcow2"),
        ],
        param: "content",
        message: "value 'images' does not have a value in the enumeration 'iso, vztmpl, import'",
    },
    Case {
        what: "checksum without algorithm",
        method: "POST",
        path: "/nodes/pve1/storage/local/download-url",
        form: &[
            ("url", "https://example.invalid/a.iso"),
            ("content", "iso"),
            ("filename", "a.iso"),
            ("checksum", "abc"),
        ],
        param: "checksum-algorithm",
        message: "missing property - 'checksum' requires this property",
    },
];

#[tokio::test]
async fn malformed_requests_get_pve_shaped_400s_naming_the_parameter() {
    let lab = lab_with_template().await;
    for case in CASES {
        let url = lab.url(case.path);
        let rb = match case.method {
            "GET" => lab.http.get(url),
            "PUT" => lab.http.put(url).form(case.form),
            _ => lab.http.post(url).form(case.form),
        };
        let reply = lab.send(rb).await;
        assert_eq!(reply.status, 400, "{}: {}", case.what, reply.body);
        assert_eq!(
            reply.reason, "Parameter verification failed.",
            "{}",
            case.what
        );
        assert_eq!(reply.body["data"], serde_json::Value::Null, "{}", case.what);
        assert_eq!(
            reply.body["message"], "Parameter verification failed.\n",
            "{}",
            case.what
        );
        let errors = reply.body["errors"].as_object().unwrap();
        let message = errors
            .get(case.param)
            .and_then(|m| m.as_str())
            .unwrap_or_else(|| {
                panic!("{}: no error for '{}' in {errors:?}", case.what, case.param)
            });
        assert!(
            message.starts_with(case.message) || message.contains(case.message),
            "{}: '{message}' does not say '{}'",
            case.what,
            case.message
        );
    }
    // None of them changed anything.
    let config = lab.get("/nodes/pve1/qemu/9000/config").await;
    assert_eq!(config.body["data"]["cores"], 1);
    assert!(config.body["data"].get("tags").is_none());
}

#[tokio::test]
async fn unknown_and_unserved_paths_get_501_naming_the_path() {
    let lab = lab_with_template().await;
    let reply = lab.get("/nodes/pve1/no-such-thing").await;
    assert_eq!(reply.status, 501);
    assert!(
        reply.reason.contains("/nodes/pve1/no-such-thing"),
        "{}",
        reply.reason
    );
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("/nodes/pve1/no-such-thing")
    );
    // In the schema, but not served by the lab.
    let reply = lab.get("/cluster/ha/groups").await;
    assert_eq!(reply.status, 501);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap()
            .contains("/cluster/ha/groups")
    );
    // A method the schema does not define on an existing path.
    let reply = lab.delete("/version").await;
    assert_eq!(reply.status, 501);
    // Outside /api2/json.
    let response = lab
        .http
        .get(format!("{}/index.html", lab.lab.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 501);
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401() {
    let lab = lab_with_template().await;
    let response = lab.http.get(lab.url("/version")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = lab
        .http
        .get(lab.url("/version"))
        .header(
            "Authorization",
            format!("PVEAPIToken={}=wrong-secret", lab.lab.token_id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// The other side: what kiln and the Terraform providers send must pass the validator.
#[tokio::test]
async fn typical_valid_configs_pass_validation() {
    let lab = lab_with_template().await;
    let key = kiln_lab_core::ed25519_public_key(b"k", "ops@lab");
    let sshkeys = common::encode(&key);
    let form: Vec<(&str, &str)> = vec![
        ("cores", "4"),
        ("sockets", "1"),
        ("memory", "4096"),
        ("balloon", "0"),
        ("cpu", "x86-64-v2-AES"),
        ("scsihw", "virtio-scsi-single"),
        ("boot", "order=scsi0;net0"),
        ("serial0", "socket"),
        ("vga", "serial0"),
        ("onboot", "1"),
        ("ostype", "l26"),
        ("machine", "q35"),
        ("agent", "enabled=1,fstrim_cloned_disks=1"),
        ("net0", "virtio,bridge=vmbr0,firewall=0,tag=20"),
        ("net1", "model=virtio,bridge=vmbr1,mtu=1500"),
        ("ipconfig0", "ip=10.0.0.5/24,gw=10.0.0.1,ip6=auto"),
        ("ipconfig1", "ip=dhcp"),
        ("nameserver", "10.0.0.1 1.1.1.1"),
        ("searchdomain", "lab.example"),
        ("ciuser", "kiln"),
        ("cipassword", "x"),
        ("ciupgrade", "0"),
        ("citype", "nocloud"),
        (
            "cicustom",
            "user=local:snippets/web1.yaml,network=local:snippets/web1-net.yaml",
        ),
        ("sshkeys", sshkeys.as_str()),
        ("tags", "kiln-prod;k8s"),
        ("description", "kiln:\n  node: web1\n"),
        ("name", "web1.lab.example"),
        ("scsi1", "local-lvm:10,discard=on,ssd=1,iothread=1"),
        ("delete", "unused0,hotplug"),
    ];
    let reply = lab.put("/nodes/pve1/qemu/9000/config", &form).await;
    assert_eq!(reply.status, 200, "{} {}", reply.reason, reply.body);
    let config = lab.get("/nodes/pve1/qemu/9000/config").await.body["data"].clone();
    assert_eq!(config["cores"], 4);
    assert_eq!(config["memory"], "4096");
    assert!(
        config["scsi1"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-9000-disk-1,"),
        "{config}"
    );
}
