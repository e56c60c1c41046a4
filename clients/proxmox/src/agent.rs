//! QEMU guest agent: ping, network interfaces (and picking the VM's
//! address), file-read.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::client::ProxmoxClient;
use crate::error::{Error, Result, Target};
use crate::params::Params;
use crate::vm::vm_path;
use crate::wire::endpoint;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgentIpAddress {
    #[serde(rename = "ip-address")]
    pub ip_address: String,
    /// `ipv4` or `ipv6`
    #[serde(rename = "ip-address-type", default)]
    pub ip_address_type: String,
    #[serde(default)]
    pub prefix: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInterface {
    pub name: String,
    #[serde(rename = "hardware-address", default)]
    pub hardware_address: Option<String>,
    /// Docker/k8s interfaces often have none.
    #[serde(rename = "ip-addresses", default)]
    pub ip_addresses: Vec<AgentIpAddress>,
}

/// Which address family the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    V4,
    V6,
    /// IPv4 if there is one, else IPv6.
    #[default]
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileContent {
    pub content: String,
    #[serde(default, deserialize_with = "crate::de::bool01")]
    pub truncated: bool,
}

/// Global unicast in Go's sense: not loopback, link-local, multicast,
/// unspecified or broadcast. Private ranges count: lab VMs live there.
pub fn is_global_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_multicast() || v6.is_unspecified() || link_local)
        }
    }
}

/// Picks the VM's address: interfaces other than `lo`, matching `mac` (the
/// MAC of net0) when given, global unicast only, in the wanted family.
pub fn choose_address(
    interfaces: &[NetworkInterface],
    mac: Option<&str>,
    family: AddressFamily,
) -> Option<IpAddr> {
    let candidates: Vec<IpAddr> = interfaces
        .iter()
        .filter(|i| i.name != "lo")
        .filter(|i| {
            mac.is_none_or(|m| {
                i.hardware_address
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(m))
            })
        })
        .flat_map(|i| i.ip_addresses.iter())
        .filter_map(|a| a.ip_address.parse::<IpAddr>().ok())
        .filter(is_global_unicast)
        .collect();
    let v4 = candidates.iter().find(|a| a.is_ipv4()).copied();
    let v6 = candidates.iter().find(|a| a.is_ipv6()).copied();
    match family {
        AddressFamily::V4 => v4,
        AddressFamily::V6 => v6,
        AddressFamily::Any => v4.or(v6),
    }
}

/// "Not up yet" answers while a guest boots (notes §8.7).
fn agent_not_ready(e: &Error) -> bool {
    let text = e.pve_message().unwrap_or_default().to_ascii_lowercase();
    e.is_retryable()
        || text.contains("guest agent is not running")
        || text.contains("not running")
        || text.contains("not available")
        || text.contains("not ready")
        || text.contains("got timeout")
}

impl ProxmoxClient {
    /// `POST …/agent/ping`.
    pub async fn agent_ping(&self, node: &str, vmid: u32) -> Result<()> {
        let _: Value = self
            .post(
                &vm_path(node, vmid, "agent/ping"),
                Params::new(),
                &Target::vm(node, vmid),
            )
            .await?;
        Ok(())
    }

    /// `GET …/agent/network-get-interfaces`; a guest-side error inside the
    /// 200 answer becomes [`Error::Agent`].
    pub async fn agent_interfaces(&self, node: &str, vmid: u32) -> Result<Vec<NetworkInterface>> {
        let path = vm_path(node, vmid, "agent/network-get-interfaces");
        let target = Target::vm(node, vmid);
        let data: Value = self.get(&path, Params::new(), &target).await?;
        parse_interfaces(data, &path, &target)
    }

    /// `GET …/agent/file-read?file=PATH`.
    pub async fn agent_file_read(&self, node: &str, vmid: u32, file: &str) -> Result<FileContent> {
        self.get(
            &vm_path(node, vmid, "agent/file-read"),
            Params::new().set("file", file),
            &Target::vm(node, vmid),
        )
        .await
    }

    /// Waits until the agent answers and reports an address: reads net0's
    /// MAC from the config, pings, then polls the interfaces. Bounded by
    /// `timeout` overall.
    pub async fn wait_for_address(
        &self,
        node: &str,
        vmid: u32,
        family: AddressFamily,
        timeout: Duration,
    ) -> Result<IpAddr> {
        let started = Instant::now();
        let target = Target::vm(node, vmid);
        let mac = self.vm_config(node, vmid).await?.mac(0);
        let poll_max = self.inner.config.agent_poll_max;
        let mut pause = poll_max.min(Duration::from_millis(200));
        let mut last: Option<String> = None;
        loop {
            let attempt = async {
                self.agent_ping(node, vmid).await?;
                self.agent_interfaces(node, vmid).await
            };
            let remaining = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, attempt).await {
                Ok(Ok(ifaces)) => match choose_address(&ifaces, mac.as_deref(), family) {
                    Some(ip) => return Ok(ip),
                    None => last = Some("agent up, no matching global address yet".into()),
                },
                Ok(Err(e)) if agent_not_ready(&e) => last = Some(e.to_string()),
                Ok(Err(e)) => return Err(e),
                Err(_) => {}
            }
            if started.elapsed() >= timeout {
                return Err(Error::WaitTimeout {
                    what: "waiting for the guest agent to report an address",
                    target,
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
            pause = (pause * 3 / 2).min(poll_max);
        }
    }
}

fn parse_interfaces(data: Value, path: &str, target: &Target) -> Result<Vec<NetworkInterface>> {
    let ep = endpoint(&reqwest::Method::GET, path);
    let result = data.get("result").cloned().unwrap_or(Value::Null);
    if let Some(err) = result.get("error") {
        let text = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned()
        };
        return Err(Error::Agent {
            endpoint: ep,
            target: target.clone(),
            class: text("class"),
            desc: text("desc"),
        });
    }
    serde_json::from_value(result).map_err(|e| Error::Decode {
        endpoint: ep,
        target: target.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) fn parse_interfaces_for_test(data: Value) -> Result<Vec<NetworkInterface>> {
    parse_interfaces(data, "/test", &Target::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, mac: &str, addrs: &[&str]) -> NetworkInterface {
        NetworkInterface {
            name: name.into(),
            hardware_address: Some(mac.into()),
            ip_addresses: addrs
                .iter()
                .map(|a| AgentIpAddress {
                    ip_address: (*a).into(),
                    ip_address_type: if a.contains(':') { "ipv6" } else { "ipv4" }.into(),
                    prefix: None,
                })
                .collect(),
        }
    }

    #[test]
    fn chooses_by_mac_and_scope() {
        let ifaces = vec![
            iface("lo", "00:00:00:00:00:00", &["127.0.0.1", "::1"]),
            iface("docker0", "02:42:aa:aa:aa:aa", &["172.17.0.1"]),
            iface(
                "eth0",
                "bc:24:11:00:00:01",
                &["169.254.3.4", "fe80::1", "10.0.0.5", "2001:db8::5"],
            ),
        ];
        let mac = Some("BC:24:11:00:00:01");
        assert_eq!(
            choose_address(&ifaces, mac, AddressFamily::Any),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            choose_address(&ifaces, mac, AddressFamily::V6),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(
            choose_address(&ifaces, None, AddressFamily::V4),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(
            choose_address(&ifaces, Some("de:ad:be:ef:00:00"), AddressFamily::Any),
            None
        );
        let only_link_local = vec![iface(
            "eth0",
            "bc:24:11:00:00:01",
            &["fe80::1", "169.254.0.9"],
        )];
        assert_eq!(
            choose_address(&only_link_local, mac, AddressFamily::Any),
            None
        );
    }
}
