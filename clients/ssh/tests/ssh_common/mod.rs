//! A real OpenSSH `sshd` on 127.0.0.1 for the SSH tests: its own config,
//! host key and authorized_keys in a temp dir, killed by pid on drop (also
//! when the test fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // not every test file uses every helper

pub mod login;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd, or returns `None` (with a note) when openssh-server is
    /// not installed (`cargo xtask setup` installs it).
    pub fn start() -> Option<Self> {
        if !Path::new(SSHD).exists() {
            eprintln!("{SSHD} missing (Debian openssh-server; `cargo xtask setup`): skipping");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        keygen(&dir.path().join("host_key"));
        std::fs::write(dir.path().join("authorized_keys"), "").unwrap();
        let privsep = Path::new("/run/sshd");
        if !privsep.exists() {
            std::fs::create_dir_all(privsep).unwrap();
        }
        let port = free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPidFile none\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n",
                host_key = dir.path().join("host_key").display(),
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let sshd = Self { child, port, dir };
        sshd.wait_listening();
        Some(sshd)
    }

    pub fn host_public_key(&self) -> PathBuf {
        self.dir.path().join("host_key.pub")
    }

    /// Lets the key pair at `key` (and `key.pub`) log in.
    pub fn authorize(&self, key: &Path) {
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let file = self.dir.path().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&file).unwrap();
        keys.push_str(&public);
        std::fs::write(file, keys).unwrap();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user the tests run as, which is who logs in to the test sshd.
pub fn login_user() -> String {
    let output = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A new unencrypted ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `SHA256:…` as ssh-keygen itself prints it for the key file at `path`.
pub fn keygen_fingerprint(path: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
