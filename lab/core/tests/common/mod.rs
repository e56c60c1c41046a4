//! A storage test's own network: a "nas" namespace with a bridge holding the server address
//! 10.213.7.1/24, a "node" (10.213.7.2) and a "stranger" (10.213.7.3) namespace each joined
//! to the bridge by a veth. Addresses exist only inside these namespaces; nothing has a
//! default route. Dropping `TestNet` kills whatever still runs in the namespaces, deletes
//! them and removes the test's directory, so a failing test leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SERVER: &str = "10.213.7.1";
pub const NODE: &str = "10.213.7.2";
pub const STRANGER: &str = "10.213.7.3";

/// What these tests run, and the Debian package each comes from.
const TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/tgtd", "tgt"),
    ("/usr/sbin/tgtadm", "tgt"),
    ("/usr/bin/ganesha.nfsd", "nfs-ganesha"),
    (
        "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so",
        "nfs-ganesha-vfs",
    ),
    ("/usr/sbin/rpcbind", "rpcbind"),
    ("/usr/bin/iscsi-ls", "libiscsi-bin"),
    ("/usr/bin/iscsi-test-cu", "libiscsi-bin"),
    ("/usr/bin/nfs-ls", "libnfs-utils"),
    ("/usr/bin/nfs-cp", "libnfs-utils"),
    ("/usr/bin/unshare", "util-linux"),
    ("/usr/bin/ip", "iproute2"),
];

/// These tests cannot run without root and the packages: they fail saying so rather than
/// pass without having run (as the qemu lab tests do).
pub fn require_root_and_packages() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .is_some_and(|uids| uids.split_whitespace().nth(1) == Some("0"));
    assert!(
        root,
        "the storage data-path tests need root (network namespaces, mounts)"
    );
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} (Debian {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {}; `cargo xtask setup` installs them",
        missing.join(", ")
    );
}

pub struct TestNet {
    pub nas: String,
    pub node: String,
    pub stranger: String,
    pub dir: PathBuf,
}

impl TestNet {
    /// `tag` keeps concurrent tests' namespaces apart (with the process id).
    pub fn new(tag: &str) -> Self {
        require_root_and_packages();
        let prefix = format!("kst-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let net = Self {
            nas: format!("{prefix}-nas"),
            node: format!("{prefix}-node"),
            stranger: format!("{prefix}-stranger"),
            dir,
        };
        // From here on, Drop removes whatever was made.
        ip(&["netns", "add", &net.nas]);
        ip(&["-n", &net.nas, "link", "set", "lo", "up"]);
        ip(&["-n", &net.nas, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &net.nas,
            "addr",
            "add",
            &format!("{SERVER}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &net.nas, "link", "set", "br0", "up"]);
        for (namespace, address, port) in [
            (&net.node, NODE, "to-node"),
            (&net.stranger, STRANGER, "to-stranger"),
        ] {
            ip(&["netns", "add", namespace]);
            ip(&["-n", namespace, "link", "set", "lo", "up"]);
            // Both ends are made directly inside their namespaces: never on the host.
            ip(&[
                "link", "add", port, "netns", &net.nas, "type", "veth", "peer", "name", "eth0",
                "netns", namespace,
            ]);
            ip(&["-n", &net.nas, "link", "set", port, "master", "br0", "up"]);
            ip(&[
                "-n",
                namespace,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", namespace, "link", "set", "eth0", "up"]);
        }
        net
    }

    /// Runs a command inside a namespace, with extra environment variables.
    pub fn run(&self, namespace: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", namespace])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Processes still in any of the test's namespaces.
    pub fn leftover_pids(&self) -> Vec<String> {
        [&self.nas, &self.node, &self.stranger]
            .into_iter()
            .flat_map(|namespace| {
                let out = Command::new("ip")
                    .args(["netns", "pids", namespace])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A dropped server is SIGKILLed without being waited for: give the kernel a moment.
pub fn wait_until_empty(net: &TestNet) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !net.leftover_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        net.leftover_pids(),
        Vec::<String>::new(),
        "processes left in the namespaces"
    );
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for pid in self.leftover_pids() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        for namespace in [&self.node, &self.stranger, &self.nas] {
            let _ = Command::new("ip")
                .args(["netns", "delete", namespace])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// stdout and stderr together, for assertions and messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
