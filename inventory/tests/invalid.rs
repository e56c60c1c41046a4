//! A table of invalid inventories: each must produce exactly these errors,
//! at exactly these places, all at once.

const BASE: &str = "\
cluster:
  name: lab
proxmox:
  endpoint: https://pve1:8006
  auth:
    token: env:PVE_TOKEN
  nodes: [pve1, pve2]
network:
  ipv4:
    cidr: 10.0.0.0/24
    gateway: 10.0.0.1
images:
  deb:
    golden: {recipe: debian-12}
templates:
  deb:
    image: deb
    vmids: {pve1: 9000, pve2: 9001}
defaults:
  template: deb
nodes:
  - name: a
    role: host
    pve_node: pve1
    ip: 10.0.0.11
  - name: b
    role: host
    pve_node: pve2
    ip: 10.0.0.12
";

/// The base inventory with each `(from, to)` replaced once.
fn patched(replacements: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in replacements {
        assert!(text.contains(from), "`{from}` is not in the base inventory");
        text = text.replacen(from, to, 1);
    }
    text
}

fn errors(text: &str) -> Vec<String> {
    match kiln_inventory::parse("kiln.yaml", text) {
        Ok(_) => Vec::new(),
        Err(error) => error
            .located()
            .into_iter()
            .map(|located| format!("{}:{}: {}", located.line, located.column, located.message))
            .collect(),
    }
}

struct Case {
    name: &'static str,
    text: String,
    expected: &'static [&'static str],
}

fn case(
    name: &'static str,
    replacements: &[(&str, &str)],
    expected: &'static [&'static str],
) -> Case {
    Case {
        name,
        text: patched(replacements),
        expected,
    }
}

fn raw(name: &'static str, text: &str, expected: &'static [&'static str]) -> Case {
    Case {
        name,
        text: text.to_owned(),
        expected,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "yaml syntax error",
            &[("  name: lab\n", "  name: [lab\n")],
            &["3:8: YAML syntax error: illegal placement of ':' indicator"],
        ),
        raw(
            "empty file",
            "",
            &[
                "1:1: the inventory is empty: expected a mapping with `cluster`, `network` and `nodes`",
            ],
        ),
        raw(
            "a second YAML document",
            &format!("{BASE}---\ncluster: {{name: x}}\n"),
            &["31:1: the inventory must be one YAML document; found a second one"],
        ),
        case(
            "unknown field with a suggestion",
            &[(
                "    role: host\n    pve_node: pve1\n",
                "    role: host\n    pve_nod: pve1\n",
            )],
            &["24:5: unknown field `pve_nod`, did you mean `pve_node`?"],
        ),
        case(
            "unknown top-level field",
            &[("defaults:\n", "defaultz:\n")],
            &["19:1: unknown field `defaultz`, did you mean `defaults`?"],
        ),
        case(
            "unknown field without a close match",
            &[("  name: lab\n", "  name: lab\n  colour: red\n")],
            &[
                "3:3: unknown field `colour`, expected one of `api_endpoint`, `distribution`, `domain`, `name`, `version`",
            ],
        ),
        case(
            "missing required field",
            &[("  - name: b\n    role: host\n", "  - name: b\n")],
            &["26:5: missing field `role` in `nodes[1]`"],
        ),
        case(
            "duplicate key",
            &[("  name: lab\n", "  name: lab\n  name: lab2\n")],
            &["3:3: duplicate key `name`"],
        ),
        case(
            "wrong type: list for a string",
            &[("  name: lab\n", "  name: [lab]\n")],
            &["2:9: expected a string, found a list"],
        ),
        case(
            "wrong type: string for an integer",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.12\n    cores: two\n")],
            &["30:12: expected a whole number, found `two`"],
        ),
        case(
            "integer out of range",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.12\n    cores: 0\n")],
            &["30:12: `0` is too small: the minimum is 1"],
        ),
        case(
            "unknown enum value",
            &[(
                "    role: host\n    pve_node: pve2\n",
                "    role: hots\n    pve_node: pve2\n",
            )],
            &["27:11: invalid `role` `hots`, did you mean `host`?"],
        ),
        case(
            "invalid cluster name",
            &[("  name: lab\n", "  name: Lab_1\n")],
            &[
                "2:9: invalid name `Lab_1`: use an RFC 1123 label (lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters)",
            ],
        ),
        case(
            "bad size",
            &[(
                "    ip: 10.0.0.12\n",
                "    ip: 10.0.0.12\n    memory: lots\n",
            )],
            &[
                "30:13: invalid size `lots`: expected a whole number and a unit, like 8GiB, 512MiB or 64G",
            ],
        ),
        case(
            "decimal size unit",
            &[(
                "    ip: 10.0.0.12\n",
                "    ip: 10.0.0.12\n    memory: 8GB\n",
            )],
            &[
                "30:13: invalid size `8GB`: `GB` is a decimal unit; write 8GiB or 8G (Proxmox reads G as GiB)",
            ],
        ),
        case(
            "bad IPv4 address",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.312\n")],
            &["29:9: invalid IPv4 address `10.0.0.312`"],
        ),
        case(
            "network written as an address",
            &[("    cidr: 10.0.0.0/24\n", "    cidr: 10.0.0.7/24\n")],
            &["10:11: `10.0.0.7/24` is an address, not a network: did you mean `10.0.0.0/24`?"],
        ),
        case(
            "literal secret",
            &[("    token: env:PVE_TOKEN\n", "    token: s3cr3t-value\n")],
            &[
                "6:12: this field holds a secret, so it must be a reference (`vault:<mount>/<path>#<key>`, `file:<name>` or `env:<VAR>`), not the secret itself; the value is not shown",
            ],
        ),
        case(
            "malformed vault reference",
            &[(
                "    token: env:PVE_TOKEN\n",
                "    token: vault:kv/proxmox\n",
            )],
            &["6:12: a `vault:` reference needs a key after `#`: `vault:<mount>/<path>#<key>`"],
        ),
        case(
            "bad VMID",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.12\n    vmid: 42\n")],
            &["30:11: `42` is too small: the minimum is 100"],
        ),
        case(
            "bad version",
            &[(
                "  name: lab\n",
                "  name: lab\n  distribution: k3s\n  version: latest\n",
            )],
            &[
                "4:12: invalid version `latest`: unexpected character 'l' while parsing major version number; expected e.g. v1.31.2+k3s1 or v1.8.3",
            ],
        ),
        case(
            "duplicate node name",
            &[("  - name: b\n", "  - name: a\n")],
            &["26:11: duplicate node name `a`: node `a` has it already"],
        ),
        case(
            "duplicate IP",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.11\n")],
            &["29:9: duplicate IP address `10.0.0.11`: node `a` has it already"],
        ),
        case(
            "duplicate VMID with a template",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.12\n    vmid: 9000\n")],
            &["30:11: duplicate VMID `9000`: template `deb` on `pve1` has it already"],
        ),
        case(
            "duplicate MAC",
            &[
                (
                    "    ip: 10.0.0.11\n",
                    "    ip: 10.0.0.11\n    mac: BC:24:11:00:00:01\n",
                ),
                (
                    "    ip: 10.0.0.12\n",
                    "    ip: 10.0.0.12\n    mac: bc:24:11:00:00:01\n",
                ),
            ],
            &["31:10: duplicate MAC address `BC:24:11:00:00:01`: node `a` has it already"],
        ),
        case(
            "IP outside the network",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.1.12\n")],
            &["29:9: node `b`: IP `10.0.1.12` is outside the network `10.0.0.0/24`"],
        ),
        case(
            "IP is the network address",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.0\n")],
            &["29:9: node `b`: IP `10.0.0.0` is the network address of `10.0.0.0/24`"],
        ),
        case(
            "IP is the broadcast address",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.255\n")],
            &["29:9: node `b`: IP `10.0.0.255` is the broadcast address of `10.0.0.0/24`"],
        ),
        case(
            "IP is the gateway",
            &[("    ip: 10.0.0.12\n", "    ip: 10.0.0.1\n")],
            &["29:9: node `b`: IP `10.0.0.1` is the gateway's address"],
        ),
        case(
            "VIP used by a node",
            &[(
                "    gateway: 10.0.0.1\n",
                "    gateway: 10.0.0.1\n  vip: 10.0.0.11\n",
            )],
            &["12:8: VIP `10.0.0.11` is node `a`'s address: a VIP must be unused"],
        ),
        case(
            "VIP outside the network",
            &[(
                "    gateway: 10.0.0.1\n",
                "    gateway: 10.0.0.1\n  vip: 192.168.0.5\n",
            )],
            &["12:8: VIP `192.168.0.5` is outside the network `10.0.0.0/24`"],
        ),
        case(
            "even number of control planes",
            &[
                (
                    "  name: lab\n",
                    "  name: lab\n  distribution: k3s\n  version: v1.31.2+k3s1\n",
                ),
                (
                    "    role: host\n    pve_node: pve1\n",
                    "    role: controlplane\n    pve_node: pve1\n",
                ),
                (
                    "    role: host\n    pve_node: pve2\n",
                    "    role: controlplane\n    pve_node: pve2\n",
                ),
            ],
            &[
                "23:1: k3s needs an odd number of control planes (1, 3, 5…) for etcd quorum; found 2",
            ],
        ),
        case(
            "kubernetes without a version",
            &[
                ("  name: lab\n", "  name: lab\n  distribution: talos\n"),
                (
                    "    role: host\n    pve_node: pve1\n",
                    "    role: controlplane\n    pve_node: pve1\n",
                ),
                (
                    "    role: host\n    pve_node: pve2\n",
                    "    role: worker\n    pve_node: pve2\n",
                ),
            ],
            &["3:17: distribution `talos` needs `cluster.version`"],
        ),
        case(
            "role does not fit the distribution",
            &[(
                "    role: host\n    pve_node: pve2\n",
                "    role: worker\n    pve_node: pve2\n",
            )],
            &["27:11: node `b` has role `worker`, but distribution `none` takes `host`"],
        ),
        case(
            "placement on an undeclared PVE node",
            &[("    pve_node: pve2\n", "    pve_node: pve3\n")],
            &["28:15: node `b` is placed on PVE node `pve3`, which `proxmox.nodes` does not list"],
        ),
        case(
            "template not defined",
            &[("  template: deb\n", "  template: debian\n")],
            &["20:13: template `debian` is not defined under `templates`"],
        ),
        case(
            "template has no copy on the placement",
            &[(
                "    vmids: {pve1: 9000, pve2: 9001}\n",
                "    vmids: {pve1: 9000}\n",
            )],
            &["20:13: template `deb` has no copy on PVE node `pve2`, where node `b` runs"],
        ),
        case(
            "template's image not defined",
            &[("    image: deb\n", "    image: ubuntu\n")],
            &["17:12: template `deb` uses image `ubuntu`, which is not defined under `images`"],
        ),
        case(
            "image with two sources",
            &[(
                "    golden: {recipe: debian-12}\n",
                "    golden: {recipe: debian-12}\n    url: https://example.org/d.qcow2\n    checksum_url: https://example.org/SHA256SUMS\n",
            )],
            &["13:3: image `deb` needs exactly one of `url`, `golden` or `talos`; found 2"],
        ),
        case(
            "url image without a checksum",
            &[(
                "    golden: {recipe: debian-12}\n",
                "    url: https://example.org/d.qcow2\n",
            )],
            &["14:10: image `deb` has no way to be verified"],
        ),
        case(
            "bare-metal node with VM fields",
            &[(
                "    pve_node: pve2\n    ip: 10.0.0.12\n",
                "    pve_node: pve2\n    ip: 10.0.0.12\n    baremetal: {address: nuc.lan}\n",
            )],
            &["28:15: node `b` is bare metal: `pve_node` only applies to VMs"],
        ),
        case(
            "proxmox auth: password without user",
            &[(
                "    token: env:PVE_TOKEN\n",
                "    password: env:PVE_PASSWORD\n",
            )],
            &["5:3: `password` needs `user`"],
        ),
        case(
            "vault reference without vault",
            &[(
                "    token: env:PVE_TOKEN\n",
                "    token: vault:kv/pve#token\n",
            )],
            &["6:12: `proxmox.auth.token` is a `vault:` reference, but `secrets.vault` is not set"],
        ),
        case(
            "profile collides with the live cluster",
            &[(
                "nodes:\n",
                "profiles:\n  nightly:\n    name_prefix: ''\n    vmids: 8990-9010\n    ips: 10.0.0.10-10.0.0.20\nnodes:\n",
            )],
            &[
                "23:18: profile `nightly` needs a non-empty `name_prefix`: node names would equal the live ones",
                "24:12: profile `nightly`: VMID range `8990-9010` contains VMID 9000, which the live cluster uses",
                "25:10: profile `nightly`: range `10.0.0.10-10.0.0.20` contains `10.0.0.11`, which the live cluster uses",
                "25:10: profile `nightly`: range `10.0.0.10-10.0.0.20` contains `10.0.0.12`, which the live cluster uses",
            ],
        ),
        case(
            "profile range too small",
            &[(
                "nodes:\n",
                "profiles:\n  nightly:\n    vmids: 9100-9100\n    ips: 10.0.0.200-10.0.0.200\nnodes:\n",
            )],
            &[
                "23:12: profile `nightly` copies 2 VMs, but its VMID range `9100-9100` holds 1 VMID",
                "24:10: profile `nightly` copies 2 VMs, but its address range `10.0.0.200-10.0.0.200` holds 1 address",
            ],
        ),
        case(
            "no nodes",
            &[(
                "nodes:\n  - name: a\n    role: host\n    pve_node: pve1\n    ip: 10.0.0.11\n  - name: b\n    role: host\n    pve_node: pve2\n    ip: 10.0.0.12\n",
                "nodes: []\n",
            )],
            &["21:1: the cluster has no nodes: add at least one under `nodes`"],
        ),
        case(
            "VM nodes without proxmox",
            &[(
                "proxmox:\n  endpoint: https://pve1:8006\n  auth:\n    token: env:PVE_TOKEN\n  nodes: [pve1, pve2]\n",
                "",
            )],
            &[
                "17:5: node `a` is a VM, but the inventory has no `proxmox` section",
                "21:5: node `b` is a VM, but the inventory has no `proxmox` section",
            ],
        ),
        case(
            "IPv6 without an IPv6 network",
            &[(
                "    ip: 10.0.0.12\n",
                "    ip: 10.0.0.12\n    ipv6: fd00::12\n",
            )],
            &["30:11: node `b` has an IPv6 address but `network.ipv6` is not set"],
        ),
        case(
            "vault backend without vault settings",
            &[("defaults:\n", "secrets:\n  backend: vault\ndefaults:\n")],
            &["20:12: backend `vault` needs `secrets.vault` (address, auth)"],
        ),
        case(
            "wake-on-lan without a MAC",
            &[(
                "    pve_node: pve2\n    ip: 10.0.0.12\n",
                "    ip: 10.0.0.12\n    baremetal:\n      power: {kind: wol}\n",
            )],
            &["30:7: node `b`: Wake-on-LAN needs the node's `mac`"],
        ),
        case(
            "too little memory",
            &[("  template: deb\n", "  template: deb\n  memory: 128M\n")],
            &["21:11: `defaults`: 128MiB of memory is too little to boot; use at least 256MiB"],
        ),
        case(
            "no boot disk",
            &[("  template: deb\n", "  template: deb\n  disks: []\n")],
            &["21:3: `defaults` needs at least one disk (the boot disk)"],
        ),
        case(
            "template names an undeclared PVE node",
            &[(
                "    vmids: {pve1: 9000, pve2: 9001}\n",
                "    vmids: {pve1: 9000, pve2: 9001, pve9: 9002}\n",
            )],
            &["18:43: template `deb` names PVE node `pve9`, which `proxmox.nodes` does not list"],
        ),
        case(
            "version with distribution none",
            &[("  name: lab\n", "  name: lab\n  version: v1.0.0\n")],
            &["3:12: `cluster.version` has no meaning with distribution `none`"],
        ),
        case(
            "profile without its own VIP",
            &[
                (
                    "  name: lab\n",
                    "  name: lab\n  distribution: k3s\n  version: v1.31.2+k3s1\n",
                ),
                (
                    "    role: host\n    pve_node: pve1\n",
                    "    role: controlplane\n    pve_node: pve1\n",
                ),
                (
                    "    role: host\n    pve_node: pve2\n",
                    "    role: worker\n    pve_node: pve2\n",
                ),
                (
                    "    gateway: 10.0.0.1\n",
                    "    gateway: 10.0.0.1\n  vip: 10.0.0.10\n",
                ),
                (
                    "nodes:\n",
                    "profiles:\n  nightly:\n    vmids: 9100-9199\n    ips: 10.0.0.200-10.0.0.220\nnodes:\n",
                ),
            ],
            &["25:3: profile `nightly` needs its own `vip`: the live cluster has one"],
        ),
        case(
            "profile names an unknown node",
            &[(
                "nodes:\n",
                "profiles:\n  nightly:\n    vmids: 9100-9199\n    ips: 10.0.0.200-10.0.0.220\n    nodes: [a, c]\nnodes:\n",
            )],
            &["25:16: profile `nightly` names node `c`, which is not in `nodes`"],
        ),
        case(
            "several errors at once",
            &[
                ("  name: lab\n", "  name: lab\n  flavour: vanilla\n"),
                (
                    "    ip: 10.0.0.11\n",
                    "    ip: 10.0.0.11\n    memory: 2 gigs\n",
                ),
                (
                    "    role: host\n    pve_node: pve2\n",
                    "    role: master\n    pve_node: pve2\n",
                ),
            ],
            &[
                "3:3: unknown field `flavour`, expected one of `api_endpoint`, `distribution`, `domain`, `name`, `version`",
                "27:13: invalid size `2 gigs`: expected a whole number and a unit, like 8GiB, 512MiB or 64G",
                "29:11: invalid `role` `master`, expected one of `controlplane`, `worker`, `host`",
            ],
        ),
        raw(
            "storage that TrueNAS or the nodes would refuse",
            &format!(
                "{BASE}storage:\n  truenas:\n    endpoint: https://nas.lan\n    api_key: env:NAS_KEY\n    iscsi:\n      portal: nas.lan:3260\n      dataset: tank\n      target_prefix: Kiln_\n    nfs:\n      server: 10.0.0.5\n      dataset: tank/k8s/nfs\n"
            ),
            &[
                "35:15: portal `nas.lan:3260` is not `address:port` or an address",
                "36:16: `tank` is not a dataset below a pool",
                "37:22: target prefix `Kiln_` must be lower-case letters, digits and `-` (it becomes part of IQNs)",
                "40:16: the NFS dataset `tank/k8s/nfs` and the iSCSI dataset `tank` must not contain one another: the CSI driver lists each parent's children as its volumes",
            ],
        ),
        raw(
            "nested storage datasets",
            &format!(
                "{BASE}storage:\n  truenas:\n    endpoint: https://nas.lan\n    api_key: env:NAS_KEY\n    iscsi:\n      portal: 10.0.0.5\n      dataset: tank/k8s\n    nfs:\n      server: 10.0.0.5\n      dataset: tank/k8s/nfs\n"
            ),
            &[
                "39:16: the NFS dataset `tank/k8s/nfs` and the iSCSI dataset `tank/k8s` must not contain one another: the CSI driver lists each parent's children as its volumes",
            ],
        ),
        case(
            "invalid map key",
            &[
                ("images:\n  deb:\n", "images:\n  Deb_1:\n"),
                ("    image: deb\n", "    image: Deb_1\n"),
            ],
            &[
                "13:3: invalid name `Deb_1`: use an RFC 1123 label (lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters)",
                "17:12: invalid name `Deb_1`: use an RFC 1123 label (lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters)",
            ],
        ),
    ]
}

#[test]
fn the_base_inventory_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn every_invalid_inventory_reports_exactly_its_errors() {
    let mut failures = Vec::new();
    for case in cases() {
        let actual = errors(&case.text);
        if actual != case.expected {
            failures.push(format!(
                "{}:\n  expected {:#?}\n  actual   {:#?}",
                case.name, case.expected, actual
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
