//! Setting up a qemu lab before its server starts: the data directory and its record, a
//! host-loopback listener if the API is to be published, then the network namespace (the
//! calling thread moves into it) with `lo` and the gateway bridge.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use crate::error::LabError;
use crate::netns;
use crate::qemu::{Accel, QemuOptions};
use crate::record::{self, LabRecord};

/// What `kiln-lab serve --backend qemu` asks for.
#[derive(Debug, Clone)]
pub struct HostSetup {
    pub instance: String,
    pub data_dir: PathBuf,
    /// The gateway bridge (`vmbr0`) and its address (`10.77.0.1/24`).
    pub bridge: String,
    pub bridge_cidr: String,
    /// A host loopback address to publish the API on as well.
    pub publish: Option<SocketAddr>,
    pub credentials: Option<PathBuf>,
    pub accel: Option<Accel>,
}

/// A prepared lab: the calling thread is inside its namespace.
#[derive(Debug)]
pub struct Prepared {
    pub options: QemuOptions,
    pub record: LabRecord,
    /// Bound on host loopback before entering the namespace.
    pub published: Option<TcpListener>,
}

/// Prepares the lab; on failure, whatever was already made is removed again. Call it before
/// the async runtime starts (see `netns::create_and_enter`).
pub fn prepare(setup: &HostSetup) -> Result<Prepared, LabError> {
    if LabRecord::path(&setup.data_dir).exists() {
        return Err(LabError::Record(format!(
            "{} holds a lab already (running, or not taken down: `kiln-lab down --data-dir {}`)",
            setup.data_dir.display(),
            setup.data_dir.display()
        )));
    }
    // Teardown removes the whole data directory, so it must be the lab's own.
    let foreign = std::fs::read_dir(&setup.data_dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if foreign {
        return Err(LabError::Record(format!(
            "{} is not empty; a qemu lab removes its data directory when taken down, so give it a new or empty one",
            setup.data_dir.display()
        )));
    }
    let namespace = netns::namespace_name(&setup.instance);
    if netns::exists(&namespace) {
        return Err(LabError::Namespace(format!(
            "'{namespace}' exists already (a lab is running or was not taken down: `kiln-lab down --instance {}`)",
            setup.instance
        )));
    }
    let published = match setup.publish {
        Some(addr) if !addr.ip().is_loopback() => return Err(LabError::NotLoopback(addr)),
        Some(addr) => {
            Some(TcpListener::bind(addr).map_err(|source| LabError::Bind { addr, source })?)
        }
        None => None,
    };
    std::fs::create_dir_all(&setup.data_dir).map_err(|e| {
        LabError::Record(format!("cannot create {}: {e}", setup.data_dir.display()))
    })?;
    let record = LabRecord {
        instance: setup.instance.clone(),
        namespace,
        pid: std::process::id(),
        data_dir: setup.data_dir.clone(),
        credentials: setup.credentials.clone(),
    };
    // Written before the namespace exists, so that `down` finds it whatever happens next.
    record.write()?;
    let made = netns::create_and_enter(&record.namespace)
        .and_then(|()| netns::set_up_gateway(&record.namespace, &setup.bridge, &setup.bridge_cidr));
    if let Err(e) = made {
        let _ = record::teardown(&record);
        return Err(e);
    }
    Ok(Prepared {
        options: QemuOptions {
            data_dir: setup.data_dir.clone(),
            namespace: record.namespace.clone(),
            accel: setup.accel,
        },
        record,
        published,
    })
}
