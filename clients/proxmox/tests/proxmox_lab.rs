//! Contract tests: kiln's Proxmox client against kiln-lab's `sim` backend
//! (the PVE 9.1 API held to the official schema). These pass against the
//! emulator; the same calls are what kiln sends to a real PVE.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod proxmox_common;

use std::collections::BTreeSet;
use std::time::Duration;

use kiln_lab::LabConfig;
use kiln_proxmox::*;
use proxmox_common::{TEMPLATE, client, start_lab};
use secrecy::SecretString;

/// A valid ed25519 key whose base64 holds `+` and `/` and whose comment holds
/// `:` and `@`: the characters that broke other clients' `sshkeys` encoding.
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK4SL+8/LsUdnbubtByfeFUrgoPLODrdW7kZkpQz4lzR cardno:000611 kiln@example";

#[tokio::test]
async fn version_nodes_and_inventory() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let v = c.version().await.unwrap();
    assert!(v.major_minor().unwrap() >= (9, 0), "{v:?}");
    assert!(v.resize_is_async());
    let nodes = c.nodes().await.unwrap();
    let names: BTreeSet<_> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["pve1", "pve2"]));
    assert!(nodes.iter().all(NodeInfo::is_online));

    let vms = c.cluster_vms().await.unwrap();
    let t = vms.iter().find(|v| v.vmid == TEMPLATE).unwrap();
    assert!(t.template && t.is_qemu());
    assert_eq!(t.node, "pve1");
    assert_eq!(c.locate_vm(TEMPLATE).await.unwrap().unwrap().node, "pve1");
    assert!(c.locate_vm(4242).await.unwrap().is_none());
    let on_node = c.node_vms("pve1").await.unwrap();
    assert!(
        on_node
            .iter()
            .any(|v| v.vmid == TEMPLATE && v.node == "pve1")
    );
}

#[tokio::test]
async fn vmid_allocation_checks_pve_and_local_reservations() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let next = c.next_id().await.unwrap();
    assert!(next >= 100);
    assert!(!c.vmid_is_free(TEMPLATE).await.unwrap());
    let a = c.allocate_vmid(Some(TEMPLATE)).await.unwrap();
    assert_ne!(a.vmid(), TEMPLATE, "an existing VMID was handed out");
    let b = c.allocate_vmid(Some(TEMPLATE)).await.unwrap();
    assert_ne!(a.vmid(), b.vmid(), "one VMID reserved twice");
    let a_id = a.vmid();
    drop(a);
    let again = c.allocate_vmid(Some(TEMPLATE)).await.unwrap();
    assert_eq!(again.vmid(), a_id, "a released reservation is not reused");
}

#[tokio::test]
async fn clone_configure_start_agent_power_delete() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);

    // Linked clone of the template, named, with a description.
    let opts = CloneOptions {
        name: Some("web-1".into()),
        full: Some(false),
        description: Some("kiln test".into()),
        ..CloneOptions::default()
    };
    let (vmid, outcome) = c.clone_new("pve1", TEMPLATE, &opts, None).await.unwrap();
    assert_eq!(outcome.exitstatus.as_deref(), Some("OK"));
    assert_eq!(outcome.upid.as_ref().unwrap().task_type, "qmclone");
    c.wait_unlocked("pve1", vmid, Duration::from_secs(5))
        .await
        .unwrap();

    let before = c.vm_config("pve1", vmid).await.unwrap();
    assert_eq!(before.name().as_deref(), Some("web-1"));
    assert!(before.has_cloudinit_drive());
    let mac = before.mac(0).unwrap();

    // Cloud-init and the keys kiln sets, through the async POST.
    let update = VmConfigUpdate::new()
        .ciuser("kiln")
        .cipassword(SecretString::from("s3cret-pw".to_owned()))
        .ciupgrade(false)
        .sshkeys(&[KEY])
        .ipconfig(
            0,
            &IpConfig::static_v4("10.42.0.11/24", Some("10.42.0.1".parse().unwrap())),
        )
        .nameservers(&["10.42.0.1".parse().unwrap()])
        .searchdomain("lab.lan")
        .tags(&["kiln-lab", "web"])
        .agent(AgentOption {
            enabled: true,
            fstrim_cloned_disks: Some(true),
        })
        .cores(2)
        .memory_mib(2048);
    let h = c.update_config("pve1", vmid, &update).await.unwrap();
    c.wait(h).await.unwrap();
    // And a sync PUT.
    c.update_config_sync(
        "pve1",
        vmid,
        &VmConfigUpdate::new().description("kiln: node web-1\nrun: test"),
    )
    .await
    .unwrap();

    let cfg = c.vm_config("pve1", vmid).await.unwrap();
    assert_eq!(cfg.get("ciuser").as_deref(), Some("kiln"));
    assert_eq!(cfg.sshkeys(), [KEY], "sshkeys not decoded back to the key");
    assert_eq!(
        cfg.get("ipconfig0").as_deref(),
        Some("ip=10.42.0.11/24,gw=10.42.0.1")
    );
    assert_eq!(cfg.tags(), ["kiln-lab", "web"]);
    assert_eq!(cfg.get("cores").as_deref(), Some("2"));
    assert_eq!(
        cfg.description().as_deref(),
        Some("kiln: node web-1\nrun: test")
    );
    assert_eq!(cfg.mac(0).as_deref(), Some(mac.as_str()));

    // Delete a key.
    c.update_config_sync("pve1", vmid, &VmConfigUpdate::new().delete("searchdomain"))
        .await
        .unwrap();
    assert_eq!(
        c.vm_config("pve1", vmid).await.unwrap().get("searchdomain"),
        None
    );

    // Resize answers a task on 9.x.
    let h = c.resize("pve1", vmid, "scsi0", "+1G").await.unwrap();
    assert!(h.upid().is_some(), "resize on PVE 9 returns a task");
    c.wait(h).await.unwrap();
    assert!(
        c.vm_config("pve1", vmid)
            .await
            .unwrap()
            .get("scsi0")
            .unwrap()
            .contains("size=3G"),
        "disk not grown"
    );

    // Start, agent, address by net0's MAC.
    c.run(|| c.start("pve1", vmid)).await.unwrap();
    let st = c.vm_status("pve1", vmid).await.unwrap();
    assert!(st.is_running(), "{st:?}");
    assert_eq!(st.lock, None);
    let ip = c
        .wait_for_address("pve1", vmid, AddressFamily::Any, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(ip.to_string(), "10.42.0.11");
    c.agent_ping("pve1", vmid).await.unwrap();
    let ifaces = c.agent_interfaces("pve1", vmid).await.unwrap();
    assert_eq!(
        choose_address(&ifaces, Some(&mac), AddressFamily::V4),
        Some(ip)
    );
    let hostname = c
        .agent_file_read("pve1", vmid, "/etc/hostname")
        .await
        .unwrap();
    assert_eq!(hostname.content.trim(), "web-1");
    let user_data = c
        .agent_file_read("pve1", vmid, "/var/lib/cloud/seed/nocloud/user-data")
        .await
        .unwrap();
    assert!(user_data.content.contains(KEY), "{}", user_data.content);

    // Power: shutdown with timeout, start again, reboot, hard stop.
    let h = c
        .shutdown(
            "pve1",
            vmid,
            ShutdownOptions {
                timeout_secs: Some(30),
                force_stop: true,
            },
        )
        .await
        .unwrap();
    c.wait(h).await.unwrap();
    assert!(!c.vm_status("pve1", vmid).await.unwrap().is_running());
    c.ensure_running("pve1", vmid).await.unwrap();
    // Starting a running VM fails in PVE; ensure_running takes it as done.
    assert!(c.run(|| c.start("pve1", vmid)).await.is_err());
    c.ensure_running("pve1", vmid).await.unwrap();
    c.run(|| c.reboot("pve1", vmid)).await.unwrap();
    assert!(c.vm_status("pve1", vmid).await.unwrap().is_running());
    c.run(|| c.stop("pve1", vmid)).await.unwrap();
    assert!(!c.vm_status("pve1", vmid).await.unwrap().is_running());

    // Delete with purge; the VM is gone from the inventory.
    let h = c
        .delete_vm(
            "pve1",
            vmid,
            DeleteOptions {
                purge: true,
                destroy_unreferenced_disks: true,
            },
        )
        .await
        .unwrap();
    c.wait(h).await.unwrap();
    assert!(c.locate_vm(vmid).await.unwrap().is_none());
    let gone = c.vm_config("pve1", vmid).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

#[tokio::test]
async fn full_clone_to_storage_and_template() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let opts = CloneOptions {
        name: Some("base-2".into()),
        full: Some(true),
        storage: Some("local-lvm".into()),
        format: Some("raw".into()),
        ..CloneOptions::default()
    };
    let (vmid, _) = c
        .clone_new("pve1", TEMPLATE, &opts, Some(200))
        .await
        .unwrap();
    assert!(vmid >= 200);
    c.run(|| c.make_template("pve1", vmid)).await.unwrap();
    assert!(c.vm_config("pve1", vmid).await.unwrap().is_template());
    let vms = c.cluster_vms().await.unwrap();
    assert!(vms.iter().any(|v| v.vmid == vmid && v.template));
}

#[tokio::test]
async fn storage_upload_download_and_content() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let storages = c.storages("pve1", None).await.unwrap();
    let local = storages.iter().find(|s| s.storage == "local").unwrap();
    assert!(local.supports("iso") && local.supports("snippets"));
    let images = c.storages("pve1", Some("images")).await.unwrap();
    assert!(images.iter().all(|s| s.supports("images")));

    let bytes = b"not really an iso".to_vec();
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let up = Upload {
        content: ImportContent::Iso,
        filename: "kiln-test.iso".into(),
        source: UploadSource::Bytes(bytes),
        checksum: Some(Checksum::sha256(sum)),
    };
    let h = c.upload("pve1", "local", &up).await.unwrap();
    c.wait(h).await.unwrap();

    // From a file on disk too (streamed).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.qcow2");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let up = Upload {
        content: ImportContent::Import,
        filename: "kiln-disk.qcow2".into(),
        source: UploadSource::File(path),
        checksum: None,
    };
    c.run(|| c.upload("pve1", "local", &up)).await.unwrap();

    let d = DownloadUrl {
        url: "https://images.example.invalid/debian.qcow2".into(),
        content: ImportContent::Import,
        filename: "debian.qcow2".into(),
        checksum: Some(Checksum::sha256("0".repeat(64))),
        compression: None,
        verify_certificates: Some(true),
    };
    let outcome = c.run(|| c.download_url("pve1", "local", &d)).await.unwrap();
    // The sim does not fetch anything and says so in a WARN line: a
    // `WARNINGS: N` exit is success.
    assert!(outcome.warnings >= 1, "{outcome:?}");

    let content = c
        .storage_content("pve1", "local", None, None)
        .await
        .unwrap();
    let volids: BTreeSet<_> = content.iter().map(|v| v.volid.as_str()).collect();
    for want in [
        "local:iso/kiln-test.iso",
        "local:import/kiln-disk.qcow2",
        "local:import/debian.qcow2",
    ] {
        assert!(volids.contains(want), "{want} missing from {volids:?}");
    }
    let isos = c
        .storage_content("pve1", "local", Some("iso"), None)
        .await
        .unwrap();
    assert!(isos.iter().all(|v| v.content.as_deref() == Some("iso")));
}

#[tokio::test]
async fn task_status_and_log() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let newid = c.allocate_vmid(None).await.unwrap();
    let h = c
        .clone_vm("pve1", TEMPLATE, newid.vmid(), &CloneOptions::default())
        .await
        .unwrap();
    let upid = h.upid().unwrap().clone();
    assert_eq!(upid.node, "pve1");
    assert!(upid.user.starts_with("kiln@pve"), "{upid:?}");
    c.wait(h).await.unwrap();
    let st = c.task_status(&upid).await.unwrap();
    assert!(!st.is_running());
    assert_eq!(st.exitstatus.as_deref(), Some("OK"));
    let log = c.task_log(&upid, 0, 50).await.unwrap();
    assert_eq!(log.last().map(|l| l.t.as_str()), Some("TASK OK"));
}

#[tokio::test]
async fn fatal_errors_surface_pve_messages() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);

    // A missing VM: PVE's 500 "does not exist", not retried, not a 404.
    let err = c.vm_config("pve1", 4242).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.class(), ErrorClass::Fatal);
    let text = err.to_string();
    assert!(text.contains("GET /nodes/pve1/qemu/4242/config"), "{text}");
    assert!(text.contains("VM 4242"), "{text}");
    assert!(text.contains("does not exist"), "{text}");

    // A parameter the schema rejects: 400 with the per-parameter message kept.
    let (vmid, _) = c
        .clone_new("pve1", TEMPLATE, &CloneOptions::default(), None)
        .await
        .unwrap();
    let err = c
        .update_config_sync("pve1", vmid, &VmConfigUpdate::new().raw("cores", "many"))
        .await
        .unwrap_err();
    match &err {
        Error::Api { status, errors, .. } => {
            assert_eq!(*status, 400);
            assert!(errors.contains_key("cores"), "{err}");
        }
        other => panic!("expected an API error, got {other}"),
    }
    assert_eq!(err.class(), ErrorClass::Fatal);

    // A clone onto an existing VMID is a conflict.
    let err = c
        .clone_vm("pve1", TEMPLATE, vmid, &CloneOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // Cross-node clone of a template on local storage: refused up front.
    let err = c
        .clone_vm(
            "pve1",
            TEMPLATE,
            vmid + 100,
            &CloneOptions {
                target: Some("pve2".into()),
                ..CloneOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert!(err.to_string().contains("local storage"), "{err}");

    // A task that fails: starting a template.
    let err = c.run(|| c.start("pve1", TEMPLATE)).await.unwrap_err();
    assert!(
        matches!(err, Error::TaskFailed { .. } | Error::Api { .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert!(err.pve_message().is_some_and(|m| !m.is_empty()), "{err}");
}

#[tokio::test]
async fn background_delay_answers_null_when_done() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let (vmid, _) = c
        .clone_new("pve1", TEMPLATE, &CloneOptions::default(), None)
        .await
        .unwrap();
    let h = c
        .update_config(
            "pve1",
            vmid,
            &VmConfigUpdate::new().onboot(true).background_delay(5),
        )
        .await
        .unwrap();
    assert!(
        h.upid().is_none(),
        "finished task within the delay answers null"
    );
    let outcome = c.wait(h).await.unwrap();
    assert_eq!(outcome.exitstatus, None);
    assert_eq!(
        c.vm_config("pve1", vmid)
            .await
            .unwrap()
            .get("onboot")
            .as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_independent_clients_never_share_a_vmid() {
    // Two processes' worth of clients: their local reservations do not see
    // each other, so PVE's `already exists` must send one of them elsewhere.
    let lab = start_lab(LabConfig::default()).await;
    let clients = [client(&lab), client(&lab)];
    let mut runs = Vec::new();
    for (k, c) in clients.iter().enumerate() {
        for i in 0..6 {
            let c = c.clone();
            runs.push(tokio::spawn(async move {
                let opts = CloneOptions {
                    name: Some(format!("c{k}-{i}")),
                    ..CloneOptions::default()
                };
                c.clone_new("pve1", TEMPLATE, &opts, None)
                    .await
                    .map(|r| r.0)
            }));
        }
    }
    let mut vmids = BTreeSet::new();
    for run in runs {
        let vmid = run.await.unwrap().unwrap();
        assert!(vmids.insert(vmid), "VMID {vmid} handed out twice");
    }
    let names: BTreeSet<String> = c_names(&clients[0], &vmids).await;
    assert_eq!(names.len(), 12, "{names:?}");
}

async fn c_names(c: &ProxmoxClient, vmids: &BTreeSet<u32>) -> BTreeSet<String> {
    let vms = c.cluster_vms().await.unwrap();
    vms.into_iter()
        .filter(|v| vmids.contains(&v.vmid))
        .filter_map(|v| v.name)
        .collect()
}

#[tokio::test]
async fn no_such_task_is_tolerated_briefly_then_reported() {
    let lab = start_lab(LabConfig::default()).await;
    let auth = Auth::token_from_str(&lab.token()).unwrap();
    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, proxmox_common::pin(&lab));
    config.task_not_found_grace = Duration::from_secs(1);
    config.task_poll_max = Duration::from_millis(50);
    let c = ProxmoxClient::new(config).unwrap();
    // A UPID no node knows: PVE answers `400 upid: no such task`.
    let upid: Upid = "UPID:pve2:0000ABCD:0000BEEF:65000000:qmstart:100:kiln@pve!kiln:"
        .parse()
        .unwrap();
    let started = std::time::Instant::now();
    let err = c
        .wait(TaskHandle::Task {
            upid,
            target: Target::vm("pve2", 100),
            permits: Permits::none(),
        })
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "gave up at once"
    );
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("no such task"), "{err}");
    let polls = lab
        .requests()
        .iter()
        .filter(|r| r.path.contains("/nodes/pve2/tasks/"))
        .count();
    assert!(polls > 1, "polled the UPID's node only {polls} times");
}

#[tokio::test]
async fn agent_wait_rides_out_the_boot_and_stops_on_fatal_answers() {
    let lab = start_lab(LabConfig {
        boot_delay: Duration::from_millis(400),
        ..LabConfig::default()
    })
    .await;
    let c = client(&lab);
    let (vmid, _) = c
        .clone_new("pve1", TEMPLATE, &CloneOptions::default(), None)
        .await
        .unwrap();
    let ip = IpConfig::static_v4("10.9.0.7/24", None);
    c.update_config_sync("pve1", vmid, &VmConfigUpdate::new().ipconfig(0, &ip))
        .await
        .unwrap();

    // Stopped VM: "not running" is waited on, and the wait is bounded.
    let err = c
        .wait_for_address("pve1", vmid, AddressFamily::V4, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err}");
    assert!(err.to_string().contains("not running"), "{err}");

    // Booting: the agent answers only after the boot delay.
    c.run(|| c.start("pve1", vmid)).await.unwrap();
    let addr = c
        .wait_for_address("pve1", vmid, AddressFamily::V4, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(addr.to_string(), "10.9.0.7");
    let pings = lab
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/qemu/{vmid}/agent/ping")))
        .count();
    assert!(pings > 1, "the agent answered at once ({pings} pings)");

    // No agent configured: fatal at once, not waited on.
    let (other, _) = c
        .clone_new("pve1", TEMPLATE, &CloneOptions::default(), None)
        .await
        .unwrap();
    c.update_config_sync(
        "pve1",
        other,
        &VmConfigUpdate::new().agent(AgentOption {
            enabled: false,
            fstrim_cloned_disks: None,
        }),
    )
    .await
    .unwrap();
    c.run(|| c.start("pve1", other)).await.unwrap();
    let started = std::time::Instant::now();
    let err = c
        .wait_for_address("pve1", other, AddressFamily::Any, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited on a fatal answer"
    );
    assert!(
        err.to_string().contains("No QEMU guest agent configured"),
        "{err}"
    );
}

#[tokio::test]
async fn cicustom_snippet_becomes_the_user_data() {
    let lab = start_lab(LabConfig::default()).await;
    let c = client(&lab);
    let snippet = "#cloud-config\nhostname: snip-1\nruncmd: [\"echo kiln\"]\n";
    lab.add_snippet("local:snippets/kiln-snip-1.yaml", snippet);
    let (vmid, _) = c
        .clone_new(
            "pve1",
            TEMPLATE,
            &CloneOptions {
                name: Some("snip-1".into()),
                ..CloneOptions::default()
            },
            None,
        )
        .await
        .unwrap();
    let update = VmConfigUpdate::new()
        .cicustom(&CiCustom {
            user: Some("local:snippets/kiln-snip-1.yaml".into()),
            ..CiCustom::default()
        })
        .ipconfig(0, &IpConfig::static_v4("10.5.0.9/24", None));
    c.run(|| c.update_config("pve1", vmid, &update))
        .await
        .unwrap();
    c.ensure_running("pve1", vmid).await.unwrap();
    c.wait_for_address("pve1", vmid, AddressFamily::V4, Duration::from_secs(10))
        .await
        .unwrap();
    let user_data = c
        .agent_file_read("pve1", vmid, "/var/lib/cloud/seed/nocloud/user-data")
        .await
        .unwrap();
    assert_eq!(user_data.content, snippet);
}
