//! What the tests need from outside Cargo, installed when missing:
//! Debian packages (apt-get) and Python tools in `./.venv` (pip).
//! Every step checks first, so running it again does nothing.

use std::path::PathBuf;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::command::{run, succeeds};
use crate::workspace_root;

/// A Debian package, the file that shows it is installed, and why kiln needs it.
struct Package {
    name: &'static str,
    probe: &'static str,
    why: &'static str,
}

const PACKAGES: &[Package] = &[
    Package {
        name: "cloud-init",
        probe: "/usr/bin/cloud-init",
        why: "`cloud-init schema` validates every user-data kiln renders",
    },
    Package {
        name: "genisoimage",
        probe: "/usr/bin/genisoimage",
        why: "builds and inspects NoCloud `cidata` ISOs",
    },
    Package {
        name: "openssh-server",
        probe: "/usr/sbin/sshd",
        why: "the SSH tests run a real sshd on loopback (and ssh-keygen, ssh-keyscan from openssh-client)",
    },
    Package {
        name: "sudo",
        probe: "/usr/bin/sudo",
        why: "the SSH tests run commands and uploads through `sudo -n`, as kiln does when it logs in as a user",
    },
    Package {
        name: "chromium",
        probe: "/usr/bin/chromium",
        why: "the collector's status page is rendered and screenshotted by headless Chromium",
    },
    Package {
        name: "debootstrap",
        probe: "/usr/sbin/debootstrap",
        why: "builds the golden image's root filesystem from Debian packages",
    },
    Package {
        name: "fdisk",
        probe: "/usr/sbin/sfdisk",
        why: "`sfdisk` writes the golden image's partition table",
    },
    Package {
        name: "e2fsprogs",
        probe: "/usr/sbin/debugfs",
        why: "`mkfs.ext4 -d` fills the golden image's filesystem; `debugfs` inspects it",
    },
    Package {
        name: "grub-pc-bin",
        probe: "/usr/lib/grub/i386-pc/boot.img",
        why: "grub's boot.img and `grub-mkimage` make the golden image BIOS-bootable",
    },
    Package {
        name: "qemu-utils",
        probe: "/usr/bin/qemu-img",
        why: "`qemu-img` converts the golden image to qcow2",
    },
    Package {
        name: "qemu-system-x86",
        probe: "/usr/bin/qemu-system-x86_64",
        why: "boots the golden image in the boot test",
    },
    Package {
        name: "tgt",
        probe: "/usr/sbin/tgtd",
        why: "the lab's real iSCSI target (`tgtd` + `tgtadm`, user space) behind the TrueNAS emulator",
    },
    Package {
        name: "nfs-ganesha",
        probe: "/usr/bin/ganesha.nfsd",
        why: "the lab's real NFS server (user space) behind the TrueNAS emulator; pulls in rpcbind, nfs-common and dbus (none of them started on the host)",
    },
    Package {
        name: "nfs-ganesha-vfs",
        probe: "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so",
        why: "ganesha's FSAL_VFS: exports plain directories, like TrueNAS's /mnt/<pool>/… datasets",
    },
    Package {
        name: "rpcbind",
        probe: "/usr/sbin/rpcbind",
        why: "ganesha registers NFSv3 and MOUNT with an rpcbind in its own network namespace",
    },
    Package {
        name: "libiscsi-bin",
        probe: "/usr/bin/iscsi-ls",
        why: "user-space iSCSI initiator (`iscsi-ls`, `iscsi-inq`, `iscsi-readcapacity16`, `iscsi-test-cu`): this kernel has no iSCSI",
    },
    Package {
        name: "libnfs-utils",
        probe: "/usr/bin/nfs-ls",
        why: "user-space NFS client (`nfs-ls`, `nfs-cp`, `nfs-cat`): this kernel has no NFS client",
    },
];

/// Daemons the storage packages bring that must never run on the host itself: the lab starts
/// its own inside network namespaces. Their postinst scripts start them through
/// `invoke-rc.d`/`deb-systemd-invoke`, which a `policy-rc.d` returning 101 stops.
const HOST_DAEMONS: [&str; 4] = ["tgtd", "ganesha.nfsd", "rpcbind", "rpc.statd"];

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Where the Python tools live, for the tests to find them.
pub struct Tools {
    pub venv_bin: PathBuf,
}

pub fn ensure_all() -> anyhow::Result<Tools> {
    ensure_packages()?;
    ensure_nextest()?;
    let venv_bin = ensure_venv()?;
    Ok(Tools { venv_bin })
}

fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&Package> = PACKAGES
        .iter()
        .filter(|package| !std::path::Path::new(package.probe).exists())
        .collect();
    if missing.is_empty() {
        println!("xtask: Debian packages present: {}", names(PACKAGES.iter()));
        return Ok(());
    }
    for package in &missing {
        println!("xtask: installing {} — {}", package.name, package.why);
    }
    let sudo = if is_root() {
        None
    } else if succeeds("sudo", &["-n", "true"]) {
        Some("sudo")
    } else {
        bail!(
            "missing Debian packages ({}) and no root or passwordless sudo to install them",
            names(missing.iter().copied())
        );
    };
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let env = [("DEBIAN_FRONTEND", std::ffi::OsStr::new("noninteractive"))];
        match sudo {
            Some(sudo) => {
                let mut full = vec!["apt-get"];
                full.extend_from_slice(args);
                run(sudo, &full, &env)
            }
            None => run("apt-get", args, &env),
        }
    };
    apt(&["update", "-q"])?;
    let mut install: Vec<String> = ["install", "-y", "-q", "--no-install-recommends"]
        .map(str::to_owned)
        .to_vec();
    install.extend(missing.iter().map(|package| package.name.to_owned()));
    if missing.iter().any(|package| QEMU.contains(&package.name)) {
        pin_qemu_to_the_release(&mut install)?;
    }
    let held = HeldDaemons::hold(sudo)?;
    let installed = apt(&install.iter().map(String::as_str).collect::<Vec<_>>());
    held.release(sudo);
    installed?;
    warn_about_host_daemons();
    Ok(())
}

/// A `policy-rc.d` that forbids every service start while packages install, written only if
/// the machine has none (Docker images ship one already, which is then left alone).
struct HeldDaemons {
    written: bool,
}

impl HeldDaemons {
    fn hold(sudo: Option<&str>) -> anyhow::Result<Self> {
        if std::path::Path::new(POLICY_RC_D).exists() {
            return Ok(Self { written: false });
        }
        println!(
            "xtask: {POLICY_RC_D} (exit 101) while installing, so no daemon starts on the host"
        );
        let script =
            format!("printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}");
        as_root(sudo, "sh", &["-c", &script])?;
        Ok(Self { written: true })
    }

    fn release(self, sudo: Option<&str>) {
        if self.written
            && let Err(e) = as_root(sudo, "rm", &["-f", POLICY_RC_D])
        {
            println!("xtask: warning: could not remove {POLICY_RC_D}: {e:#}");
        }
    }
}

fn as_root(sudo: Option<&str>, program: &str, args: &[&str]) -> anyhow::Result<()> {
    match sudo {
        Some(sudo) => {
            let mut full = vec![program];
            full.extend_from_slice(args);
            run(sudo, &full, &[])
        }
        None => run(program, args, &[]),
    }
}

/// Names any storage daemon running in this (the host's) network namespace: one started by an
/// install before this guard existed, or by an init system at boot. Not stopped here, since it
/// may be the machine owner's own; the message says how.
fn warn_about_host_daemons() {
    let Ok(ours) = std::fs::read_link("/proc/self/ns/net") else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
    {
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let comm = comm.trim();
        let same_namespace =
            std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|theirs| theirs == ours);
        if HOST_DAEMONS.contains(&comm) && same_namespace {
            println!(
                "xtask: warning: {comm} (pid {pid}) runs on the host; the lab needs none there (stop it: `kill {pid}`, or its service)"
            );
        }
    }
}

/// QEMU's packages must come from one release: some machine images carry a
/// backported `qemu-utils` that `Breaks` the release's `qemu-system-x86`.
const QEMU: [&str; 2] = ["qemu-utils", "qemu-system-x86"];

/// Installs both QEMU packages from the distribution's own release
/// (`qemu-utils/bookworm`), replacing a mismatched backport.
fn pin_qemu_to_the_release(install: &mut Vec<String>) -> anyhow::Result<()> {
    let os_release =
        std::fs::read_to_string("/etc/os-release").context("cannot read /etc/os-release")?;
    let codename = os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .context("/etc/os-release names no VERSION_CODENAME")?;
    install.retain(|name| !QEMU.contains(&name.as_str()));
    install.extend(QEMU.iter().map(|name| format!("{name}/{codename}")));
    install.push("--allow-downgrades".to_owned());
    println!(
        "xtask: installing QEMU from {codename} itself (a backported qemu-utils would block qemu-system-x86)"
    );
    Ok(())
}

fn names<'a>(packages: impl Iterator<Item = &'a Package>) -> String {
    packages
        .map(|package| package.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn ensure_nextest() -> anyhow::Result<()> {
    if succeeds("cargo", &["nextest", "--version"]) {
        return Ok(());
    }
    println!("xtask: installing cargo-nextest — the test runner");
    run("cargo", &["install", "cargo-nextest", "--locked"], &[])
}

/// The venv is rebuilt only when `xtask/python-requirements.txt` changes.
fn ensure_venv() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let venv = root.join(".venv");
    let bin = venv.join("bin");
    let requirements = root.join("xtask/python-requirements.txt");
    let wanted = std::fs::read(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let stamp = venv.join(".kiln-requirements.sha256");
    let digest = hex::encode(Sha256::digest(&wanted));
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == digest)
        && bin.join("python3").exists()
    {
        println!("xtask: Python tools present in .venv");
        return Ok(bin);
    }
    println!(
        "xtask: installing Python tools into .venv — OpenBao (`bao`) for the secrets tests, proxmoxer for the lab's third-party client test"
    );
    if !bin.join("python3").exists() {
        let venv_path = venv.to_string_lossy().into_owned();
        run("python3", &["-m", "venv", &venv_path], &[])?;
    }
    let pip = bin.join("pip").to_string_lossy().into_owned();
    let requirements_path = requirements.to_string_lossy().into_owned();
    run(
        &pip,
        &[
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            &requirements_path,
        ],
        &[],
    )?;
    std::fs::write(&stamp, digest).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(bin)
}
