//! Default route, DNS resolution, and TCP reachability of the configured endpoints.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::config::{AgentConfig, Endpoint};
use crate::report::{Check, Status};

use super::{Host, check};

/// How long one resolution or one TCP connect may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(3);

/// `RTF_UP` and `RTF_REJECT` from `<linux/route.h>`.
const RTF_UP: u32 = 0x1;
const RTF_REJECT: u32 = 0x200;

pub(super) async fn checks(config: &AgentConfig, host: &Host) -> Vec<Check> {
    let mut checks = vec![default_route(host)];
    for name in &config.dns_names {
        checks.push(resolve(name).await);
    }
    for endpoint in &config.endpoints {
        checks.push(reach(endpoint).await);
    }
    checks
}

fn default_route(host: &Host) -> Check {
    let v4 = std::fs::read_to_string(host.proc.join("net/route"))
        .ok()
        .and_then(|text| default_v4(&text));
    let v6 = std::fs::read_to_string(host.proc.join("net/ipv6_route"))
        .ok()
        .and_then(|text| default_v6(&text));
    match (v4, v6) {
        (None, None) => check("network.route", Status::Fail, "no default route"),
        (v4, v6) => {
            let routes: Vec<String> = v4.into_iter().chain(v6).collect();
            check("network.route", Status::Ok, routes.join(", "))
        }
    }
}

/// `/proc/net/route`: Iface Destination Gateway Flags …, addresses in hex, host byte order.
fn default_v4(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (iface, destination, gateway, flags) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
        );
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let mask = fields.get(7)?;
        if *destination != "00000000" || *mask != "00000000" || flags & RTF_UP == 0 {
            return None;
        }
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        let gateway = Ipv4Addr::from(gateway.swap_bytes().to_be_bytes());
        Some(format!("default via {gateway} dev {iface}"))
    })
}

/// `/proc/net/ipv6_route`: dest, dest prefix, src, src prefix, next hop, metric, refcnt,
/// use, flags, device. The default route is `::/0`, not rejected, not on `lo`.
fn default_v6(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let flags = u32::from_str_radix(fields.get(8)?, 16).ok()?;
        let device = fields.get(9)?;
        let is_default = fields.first()?.chars().all(|c| c == '0') && *fields.get(1)? == "00";
        (is_default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && *device != "lo")
            .then(|| format!("IPv6 default dev {device}"))
    })
}

async fn resolve(name: &str) -> Check {
    let check_name = format!("network.dns.{name}");
    match tokio::time::timeout(NETWORK_TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Err(_) => check(
            check_name,
            Status::Fail,
            format!("{name}: no answer within {} s", NETWORK_TIMEOUT.as_secs()),
        ),
        Ok(Err(error)) => check(check_name, Status::Fail, format!("{name}: {error}")),
        Ok(Ok(addresses)) => {
            let addresses: Vec<String> =
                addresses.map(|address| address.ip().to_string()).collect();
            if addresses.is_empty() {
                check(check_name, Status::Fail, format!("{name}: no addresses"))
            } else {
                check(
                    check_name,
                    Status::Ok,
                    format!("{name} → {}", addresses.join(", ")),
                )
            }
        }
    }
}

async fn reach(endpoint: &Endpoint) -> Check {
    let check_name = format!("network.endpoint.{}", endpoint.name);
    let target = format!("{}:{}", endpoint.host, endpoint.port);
    let started = Instant::now();
    let connect = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port));
    match tokio::time::timeout(NETWORK_TIMEOUT, connect).await {
        Err(_) => check(
            check_name,
            Status::Fail,
            format!(
                "{target}: no connection within {} s",
                NETWORK_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(error)) => check(check_name, Status::Fail, format!("{target}: {error}")),
        Ok(Ok(_stream)) => check(
            check_name,
            Status::Ok,
            format!("{target} reachable in {} ms", started.elapsed().as_millis()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ipv4_default_route() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            default_v4(route).as_deref(),
            Some("default via 10.0.0.1 dev eth0")
        );
        let only_local = route.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(default_v4(&only_local), None);
    }

    #[test]
    fn finds_the_ipv6_default_route_but_not_the_loopback_reject() {
        let zero = "0".repeat(32);
        let reject = format!("{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n");
        assert_eq!(default_v6(&reject), None);
        let real = format!(
            "{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n"
        );
        assert_eq!(
            default_v6(&format!("{reject}{real}")).as_deref(),
            Some("IPv6 default dev eth0")
        );
    }
}
