//! The `sim` backend: a guest is a record with a boot time. Its agent answers once the boot
//! delay has passed, with the static addresses of its config.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{AgentCommand, AgentError, Backend, BackendKind, BoxFuture, GuestNic, GuestSpec};

struct SimGuest {
    spec: GuestSpec,
    agent_at: Instant,
}

/// Guests as state machines: stopped → booting (boot delay) → agent up.
pub struct SimBackend {
    boot_delay: Duration,
    guests: Mutex<HashMap<u32, SimGuest>>,
}

impl SimBackend {
    pub fn new(boot_delay: Duration) -> Self {
        Self {
            boot_delay,
            guests: Mutex::new(HashMap::new()),
        }
    }

    fn answer(&self, vmid: u32, command: &AgentCommand) -> Result<Value, AgentError> {
        let guests = self
            .guests
            .lock()
            .map_err(|_| AgentError::Failed("guest table unavailable".into()))?;
        let guest = guests.get(&vmid).ok_or(AgentError::NotRunning)?;
        if Instant::now() < guest.agent_at {
            return Err(AgentError::NotRunning);
        }
        match command {
            AgentCommand::Ping => Ok(json!({})),
            AgentCommand::NetworkGetInterfaces => Ok(interfaces(&guest.spec.nics)),
            AgentCommand::FileRead { file } => {
                let content = read_file(&guest.spec, file).ok_or_else(|| {
                    AgentError::Failed(format!(
                        "Failed to open file '{file}': No such file or directory"
                    ))
                })?;
                Ok(json!({"content": content, "bytes-read": content.len()}))
            }
        }
    }
}

impl Backend for SimBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn power_on(&self, spec: GuestSpec) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut guests = self
                .guests
                .lock()
                .map_err(|_| "guest table unavailable".to_string())?;
            let agent_at = Instant::now() + self.boot_delay;
            guests.insert(spec.vmid, SimGuest { spec, agent_at });
            Ok(())
        })
    }

    fn power_off(&self, vmid: u32) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Ok(mut guests) = self.guests.lock() {
                guests.remove(&vmid);
            }
        })
    }

    fn agent(&self, vmid: u32, command: AgentCommand) -> BoxFuture<'_, Result<Value, AgentError>> {
        Box::pin(async move { self.answer(vmid, &command) })
    }
}

/// `guest-network-get-interfaces` as qemu-guest-agent answers it.
fn interfaces(nics: &[GuestNic]) -> Value {
    let mut out = vec![json!({
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
            {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
        ],
        "statistics": statistics(),
    })];
    for nic in nics {
        let mut addresses = Vec::new();
        for (cidr, family) in [(&nic.ipv4, "ipv4"), (&nic.ipv6, "ipv6")] {
            if let Some((ip, prefix)) = cidr.as_deref().and_then(|c| c.split_once('/')) {
                let prefix: u32 = prefix.parse().unwrap_or(0);
                addresses
                    .push(json!({"ip-address": ip, "ip-address-type": family, "prefix": prefix}));
            }
        }
        addresses.push(json!({
            "ip-address": link_local(&nic.mac),
            "ip-address-type": "ipv6",
            "prefix": 64,
        }));
        out.push(json!({
            "name": nic.name,
            "hardware-address": nic.mac,
            "ip-addresses": addresses,
            "statistics": statistics(),
        }));
    }
    Value::Array(out)
}

fn statistics() -> Value {
    json!({"rx-bytes": 0, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 0,
           "tx-bytes": 0, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 0})
}

/// The EUI-64 link-local address a Linux guest derives from its MAC.
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    if b.len() != 6 {
        return "fe80::1".to_string();
    }
    format!(
        "fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}",
        b[0] ^ 0x02,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

/// Files the simulated guest can show through `guest-file-read`.
fn read_file(spec: &GuestSpec, file: &str) -> Option<String> {
    let seed = "/var/lib/cloud/seed/nocloud/";
    match file {
        "/etc/hostname" => Some(format!("{}\n", spec.name)),
        "/etc/ssh/ssh_host_ed25519_key.pub" => Some(format!("{}\n", spec.host_key)),
        _ => match file.strip_prefix(seed)? {
            "user-data" => Some(spec.nocloud.user_data.clone()),
            "meta-data" => Some(spec.nocloud.meta_data.clone()),
            "network-config" => Some(spec.nocloud.network_config.clone()),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_eui64() {
        assert_eq!(link_local("bc:24:11:aa:bb:cc"), "fe80::be24:11ff:feaa:bbcc");
    }
}
