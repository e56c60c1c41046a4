//! Fault tests against kiln-lab: injected retryable errors, dropped
//! connections, failing clone tasks and lock contention. Seeded: set
//! `KILN_TEST_SEED` to replay a failure (the seed is printed on failure).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers are test code too

mod proxmox_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kiln_lab::{FaultConfig, FaultKind, LabConfig, OperationFaults, StorageLockConfig};
use kiln_proxmox::*;
use proxmox_common::{SeedGuard, TEMPLATE, client, seed, start_lab};

const SEQUENCES: u32 = 20;

fn faults(seed: u64) -> FaultConfig {
    let retryable = vec![
        FaultKind::CantLock,
        FaultKind::GotTimeout,
        FaultKind::NoWorkerUpid,
        FaultKind::Internal,
    ];
    let every = OperationFaults {
        error_rate: 0.10,
        errors: retryable.clone(),
        drop_rate: 0.02,
        latency_ms: 2,
        ..OperationFaults::default()
    };
    let clone = OperationFaults {
        task_ms: Some(80),
        task_failure_rate: 0.10,
        task_errors: vec![FaultKind::StorageLock, FaultKind::CantLock],
        ..every.clone()
    };
    FaultConfig {
        seed,
        operations: BTreeMap::from([("*".to_owned(), every), ("clone".to_owned(), clone)]),
        boot_to_agent_ms: Some(30),
        // Real contention on the storage allocation lock: clones hold it for
        // a while and give up with PVE's `got timeout` when it stays taken.
        storage_lock: Some(StorageLockConfig {
            hold_ms: 40,
            timeout_ms: 60,
        }),
        broken_boot_vmids: Vec::new(),
    }
}

fn update(i: u32) -> VmConfigUpdate {
    VmConfigUpdate::new()
        .ciuser("kiln")
        .ipconfig(
            0,
            &IpConfig::static_v4(format!("10.77.0.{}/24", 10 + i), None),
        )
        .tags(&["kiln-faults"])
        .description(&format!("sequence {i}"))
}

/// clone → configure → start, the engine's order. Odd sequences touch the
/// new VM while its clone task still runs (`VM is locked (clone)`), which the
/// client must ride out with retries.
async fn sequence(c: &ProxmoxClient, i: u32) -> Result<u32, Error> {
    let opts = CloneOptions {
        name: Some(format!("f-{i}")),
        ..CloneOptions::default()
    };
    let vmid = if i.is_multiple_of(2) {
        c.clone_new("pve1", TEMPLATE, &opts, None).await?.0
    } else {
        contended_clone_and_config(c, i, &opts).await?
    };
    let change = update(i);
    c.run(|| c.update_config("pve1", vmid, &change)).await?;
    c.run(|| c.start("pve1", vmid)).await?;
    Ok(vmid)
}

async fn contended_clone_and_config(
    c: &ProxmoxClient,
    i: u32,
    opts: &CloneOptions,
) -> Result<u32, Error> {
    for _ in 0..5 {
        let reservation = c.allocate_vmid(None).await?;
        let vmid = reservation.vmid();
        let handle = match c.clone_vm("pve1", TEMPLATE, vmid, opts).await {
            Err(e) if e.is_conflict() => continue,
            other => other?,
        };
        let change = update(i);
        let early = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            c.run(|| c.update_config("pve1", vmid, &change)).await
        };
        let (cloned, configured) = tokio::join!(c.wait(handle), early);
        match cloned {
            // The clone task lost a lock race and PVE removed the half-made
            // VM: whatever the early config saw is moot; clone again.
            Err(e) if e.is_retryable() => continue,
            Err(e) => return Err(e),
            Ok(_) => {
                configured?;
                return Ok(vmid);
            }
        }
    }
    Err(Error::Invalid(format!("sequence {i}: clone kept failing")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sequences_survive_faults() {
    let seed = seed();
    let _guard = SeedGuard(seed);
    let lab = start_lab(LabConfig {
        faults: Some(faults(seed)),
        ..LabConfig::default()
    })
    .await;
    let c = client(&lab);

    let runs = (0..SEQUENCES).map(|i| {
        let c = c.clone();
        tokio::spawn(async move { (i, sequence(&c, i).await) })
    });
    let mut vmids = Vec::new();
    for run in runs {
        let (i, result) = run.await.unwrap();
        match result {
            Ok(vmid) => vmids.push(vmid),
            Err(e) => panic!("sequence {i} failed (seed {seed}): {e}"),
        }
    }

    let unique: BTreeSet<u32> = vmids.iter().copied().collect();
    assert_eq!(unique.len(), vmids.len(), "duplicate VMIDs: {vmids:?}");

    // Read back without faults in the way of the assertions' own calls.
    let vms = c.cluster_vms().await.unwrap();
    for vmid in &vmids {
        let vm = vms.iter().find(|v| v.vmid == *vmid).unwrap();
        assert_eq!(vm.lock, None, "VM {vmid} left locked");
        assert_eq!(vm.status.as_deref(), Some("running"), "VM {vmid}");
        assert!(vm.has_tag("kiln-faults"), "VM {vmid} tags {:?}", vm.tags);
        let status = c.vm_status("pve1", *vmid).await.unwrap();
        assert_eq!(status.lock, None, "VM {vmid} left locked");
    }
    // Every VM except the template is one of ours: no orphan from a retry.
    let ours: BTreeSet<u32> = vms
        .iter()
        .filter(|v| v.vmid != TEMPLATE)
        .map(|v| v.vmid)
        .collect();
    assert_eq!(ours, unique, "VMs left behind by retried clones");

    // The faults really happened.
    let failed = lab.requests().iter().filter(|r| r.status >= 500).count();
    assert!(failed > 0, "no fault was injected (seed {seed})");
}

#[tokio::test]
async fn fatal_error_is_not_retried_and_keeps_pve_message() {
    let seed = seed();
    let _guard = SeedGuard(seed);
    let lab = start_lab(LabConfig {
        faults: Some(faults(seed)),
        ..LabConfig::default()
    })
    .await;
    let c = client(&lab);
    let err = c
        .clone_vm("pve1", 4242, 4243, &CloneOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    let text = err.to_string();
    assert!(text.contains("POST /nodes/pve1/qemu/4242/clone"), "{text}");
    assert!(text.contains("does not exist"), "{text}");

    // Without injected faults in the way, count the attempts exactly.
    let calm = start_lab(LabConfig::default()).await;
    let c = client(&calm);
    let err = c
        .clone_vm("pve1", 4242, 4243, &CloneOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let attempts = calm
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/qemu/4242/clone"))
        .count();
    assert_eq!(attempts, 1, "a fatal error was retried");
}

#[tokio::test]
async fn slow_answers_hit_the_request_timeout() {
    let seed = seed();
    let _guard = SeedGuard(seed);
    let slow = OperationFaults {
        latency_ms: 400,
        ..OperationFaults::default()
    };
    let lab = start_lab(LabConfig {
        faults: Some(FaultConfig {
            seed,
            operations: BTreeMap::from([("version".to_owned(), slow)]),
            ..FaultConfig::default()
        }),
        ..LabConfig::default()
    })
    .await;
    let auth = Auth::token_from_str(&lab.token()).unwrap();
    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, proxmox_common::pin(&lab));
    config.request_timeout = Duration::from_millis(100);
    config.retry = RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_times: 2,
        max_total: Duration::from_secs(2),
    };
    let c = ProxmoxClient::new(config).unwrap();
    let err = c.version().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("GET /version"), "{err}");
    // Other calls are not slowed down.
    c.nodes().await.unwrap();
}

#[tokio::test]
async fn failing_tasks_are_redispatched_a_bounded_number_of_times() {
    let seed = seed();
    let _guard = SeedGuard(seed);
    let always_fails = OperationFaults {
        task_failure_rate: 1.0,
        task_errors: vec![FaultKind::StorageLock],
        ..OperationFaults::default()
    };
    let lab = start_lab(LabConfig {
        faults: Some(FaultConfig {
            seed,
            operations: BTreeMap::from([("clone".to_owned(), always_fails)]),
            ..FaultConfig::default()
        }),
        ..LabConfig::default()
    })
    .await;
    let auth = Auth::token_from_str(&lab.token()).unwrap();
    let mut config = ClientConfig::new(lab.endpoint.clone(), auth, proxmox_common::pin(&lab));
    config.task_poll_max = Duration::from_millis(20);
    config.retry = RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_times: 3,
        max_total: Duration::from_secs(5),
    };
    let c = ProxmoxClient::new(config).unwrap();
    let newid = c.allocate_vmid(None).await.unwrap();
    let opts = CloneOptions::default();
    let err = c
        .run(|| c.clone_vm("pve1", TEMPLATE, newid.vmid(), &opts))
        .await
        .unwrap_err();
    match &err {
        Error::TaskFailed {
            upid,
            exitstatus,
            log_tail,
            ..
        } => {
            assert_eq!(upid.task_type, "qmclone");
            assert!(exitstatus.contains("can't lock file"), "{err}");
            assert!(
                log_tail.iter().any(|l| l.starts_with("TASK ERROR")),
                "{log_tail:?}"
            );
        }
        other => panic!("expected a failed task, got {other}"),
    }
    assert!(err.is_retryable(), "{err}");
    let dispatches = lab
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/clone"))
        .count();
    assert_eq!(dispatches, 4, "1 dispatch + max_times re-dispatches");
    // The failed clones left nothing behind.
    assert!(c.locate_vm(newid.vmid()).await.unwrap().is_none());
}
