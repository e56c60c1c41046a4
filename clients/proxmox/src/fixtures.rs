//! Every recorded PVE response in `clients/proxmox/fixtures/` (copied from the
//! project's shared reference data, with its provenance README)
//! parses into the client's types (one table entry per file; a new file
//! without an entry fails the coverage test).

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use crate::agent::{AddressFamily, choose_address, parse_interfaces_for_test};
use crate::cluster::{Version, guests_only};
use crate::config::VmConfig;
use crate::de::id_value;
use crate::error::{Endpoint, Error, ErrorClass, Target};
use crate::task::{TaskStatus, exit_success};
use crate::upid::Upid;
use crate::vm::VmStatus;
use crate::wire::{api_error, decode};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn body(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn data(name: &str) -> Value {
    let v: Value = serde_json::from_slice(&body(name)).unwrap();
    v.get("data").cloned().unwrap_or(Value::Null)
}

fn ep() -> Endpoint {
    Endpoint {
        method: "GET",
        path: "/fixture".into(),
    }
}

fn typed<T: serde::de::DeserializeOwned>(name: &str) -> T {
    decode(data(name), &ep(), &Target::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

type Check = fn(&str);

const TABLE: &[(&str, Check)] = &[
    ("pve62_agent_network_get_interfaces.json", |f| {
        let ifaces = parse_interfaces_for_test(data(f)).unwrap();
        assert!(ifaces.iter().any(|i| i.name == "lo"));
        // Only loopback and link-local would be skipped; whatever is chosen
        // must be a global unicast address on a non-lo interface.
        if let Some(ip) = choose_address(&ifaces, None, AddressFamily::Any) {
            assert!(!ip.is_loopback());
        }
    }),
    ("pve62_agent_network_get_interfaces_multi_nic.json", |f| {
        let ifaces = parse_interfaces_for_test(data(f)).unwrap();
        assert!(ifaces.iter().any(|i| i.ip_addresses.is_empty()));
        assert!(ifaces.iter().any(|i| i.hardware_address.is_none()));
        let eth0 = ifaces.iter().find(|i| i.name == "eth0").unwrap();
        let mac = eth0.hardware_address.clone().unwrap();
        let ip = choose_address(&ifaces, Some(&mac), AddressFamily::Any).unwrap();
        assert!(
            eth0.ip_addresses
                .iter()
                .any(|a| a.ip_address == ip.to_string())
        );
    }),
    ("pve62_agent_network_get_interfaces_unsupported.json", |f| {
        let err = parse_interfaces_for_test(data(f)).unwrap_err();
        assert!(
            matches!(&err, Error::Agent { class, .. } if class == "Unsupported"),
            "{err}"
        );
        assert!(err.to_string().contains("not currently supported"));
    }),
    ("pve62_qemu_config_cloudinit.json", |f| {
        let c: VmConfig = typed(f);
        assert!(c.has_cloudinit_drive());
        assert_eq!(c.name().as_deref(), Some("test-qemu"));
        assert_eq!(c.mac(0).as_deref(), Some("FF:FF:FF:FF:FF:FF"));
        assert_eq!(c.tags(), ["one", "two", "three"]);
        assert!(c.digest().is_some());
    }),
    ("pve62_qemu_status_current_prelaunch.json", |f| {
        let s: VmStatus = typed(f);
        assert!(!s.is_running());
        assert_eq!(s.qmpstatus.as_deref(), Some("prelaunch"));
        assert_eq!(s.vmid, Some(102));
    }),
    ("pve62_qemu_status_current_stopped.json", |f| {
        let s: VmStatus = typed(f);
        assert_eq!(s.status, "stopped");
        assert_eq!(s.lock, None);
    }),
    ("pve8_cluster_nextid.json", |f| {
        assert_eq!(id_value(&data(f)), Some(100));
    }),
    ("pve8_cluster_nextid_vmid_taken_http400.json", |f| {
        let e = api_error(
            ep(),
            &Target::default(),
            StatusCode::BAD_REQUEST,
            None,
            &body(f),
        );
        assert_eq!(e.class(), ErrorClass::Conflict);
        assert!(e.to_string().contains("vmid: VM 200 already exists"), "{e}");
    }),
    ("pve8_cluster_resources.json", |f| {
        let vms = guests_only(typed(f)).unwrap();
        assert_eq!(vms.len(), 4);
        assert!(vms.iter().any(|v| v.template));
        assert!(vms.iter().all(|v| v.vmid >= 100 && !v.node.is_empty()));
    }),
    ("pve8_qemu_status_current_running.json", |f| {
        let s: VmStatus = typed(f);
        assert!(s.is_running());
        assert!(s.agent);
        assert!(s.pid.is_some());
    }),
    ("pve8_version.json", |f| {
        let v: Version = typed(f);
        assert_eq!(v.major_minor(), Some((8, 4)));
        assert!(v.resize_is_async());
        assert!(!v.agent_needs_guest_agent_privs());
    }),
    ("pve9_error_agent_not_running_http500.json", |f| {
        let e = api_error(
            ep(),
            &Target::vm("pve", 198),
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            &body(f),
        );
        assert_eq!(e.pve_message(), Some("QEMU guest agent is not running"));
        assert_eq!(e.class(), ErrorClass::Fatal);
        // With a reason phrase, the phrase wins over the body.
        let e = api_error(
            ep(),
            &Target::default(),
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("reason text".into()),
            &body(f),
        );
        assert_eq!(e.pve_message(), Some("reason text"));
    }),
    ("task_status_running.json", |f| {
        let s: TaskStatus = typed(f);
        assert!(s.is_running());
        assert_eq!(s.exitstatus, None);
        let upid: Upid = s.upid.unwrap().parse().unwrap();
        assert_eq!(upid.node, "node1");
    }),
    ("task_status_stopped_error.json", |f| {
        let s: TaskStatus = typed(f);
        assert!(!s.is_running());
        assert_eq!(exit_success(s.exitstatus.as_deref().unwrap()), None);
    }),
    ("task_status_stopped_ok.json", |f| {
        let s: TaskStatus = typed(f);
        assert_eq!(exit_success(s.exitstatus.as_deref().unwrap()), Some(0));
    }),
];

#[test]
fn every_fixture_parses() {
    for (name, check) in TABLE {
        check(name);
    }
}

#[test]
fn every_fixture_file_is_in_the_table() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let tested: BTreeSet<String> = TABLE.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(on_disk, tested);
}
