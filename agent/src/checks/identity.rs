//! Who this host is: hostname, machine-id, and the kiln node and cluster it reports as.

use crate::config::AgentConfig;
use crate::report::{Check, Status};

use super::{Host, check, read_trimmed};

/// The machine-id is meant to stay confidential (machine-id(5)), so reports carry a prefix
/// that tells hosts apart but does not reveal it.
const MACHINE_ID_SHOWN: usize = 8;

pub(super) fn checks(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let identity = format!("node {} in cluster {}", config.node, config.cluster);
    let hostname = match read_trimmed(&host.proc.join("sys/kernel/hostname")) {
        Ok(name) => name,
        Err(reason) => {
            return vec![check(
                "identity",
                Status::Fail,
                format!("{identity}: {reason}"),
            )];
        }
    };
    let machine_id = read_trimmed(&host.etc.join("machine-id"))
        .ok()
        .filter(|id| !id.is_empty());
    let short_hostname = hostname.split('.').next().unwrap_or(&hostname);
    let (status, problem) = match &machine_id {
        None => (Status::Warn, Some("no machine-id".to_owned())),
        Some(_) if short_hostname != config.node => (
            Status::Warn,
            Some(format!("hostname {hostname:?} is not the node name")),
        ),
        Some(_) => (Status::Ok, None),
    };
    let id_shown = machine_id
        .as_deref()
        .map(|id| id.chars().take(MACHINE_ID_SHOWN).collect::<String>())
        .unwrap_or_else(|| "-".to_owned());
    let mut detail = format!("host {hostname}, machine-id {id_shown}…, {identity}");
    if let Some(problem) = problem {
        detail = format!("{detail}: {problem}");
    }
    vec![check("identity", status, detail)]
}
