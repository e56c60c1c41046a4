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
];

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
    apt(&install.iter().map(String::as_str).collect::<Vec<_>>())
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
