//! What the builder changes in the debootstrapped root filesystem so it
//! boots like a cloud image: grub.cfg, fstab, cloud-init datasources,
//! no machine identity and no host keys.

use std::path::{Path, PathBuf};

use crate::BuildError;

const STEP: &str = "configure guest";

/// NoCloud (Proxmox's cloud-init CD) and ConfigDrive; `None` lets
/// cloud-init finish without a seed.
const DATASOURCES: &str = "datasource_list: [ NoCloud, ConfigDrive, None ]\n";

const INTERFACES: &str = "# kiln golden image: cloud-init writes the real configuration.\n\
source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n";

pub fn configure(rootfs: &Path, filesystem_uuid: &str) -> Result<(), BuildError> {
    let (kernel, initrd) = kernel_and_initrd(rootfs)?;
    write(
        rootfs,
        "boot/grub/grub.cfg",
        &grub_cfg(filesystem_uuid, &kernel, &initrd),
    )?;
    write(
        rootfs,
        "etc/fstab",
        &format!("UUID={filesystem_uuid} / ext4 errors=remount-ro 0 1\n"),
    )?;
    write(
        rootfs,
        "etc/cloud/cloud.cfg.d/90_kiln_datasources.cfg",
        DATASOURCES,
    )?;
    write(rootfs, "etc/network/interfaces", INTERFACES)?;
    write(rootfs, "etc/hostname", "debian\n")?;
    write(
        rootfs,
        "etc/hosts",
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    )?;
    write(rootfs, "etc/default/locale", "LANG=C.UTF-8\n")?;
    // Empty: systemd makes a new machine-id on each clone's first boot.
    write(rootfs, "etc/machine-id", "")?;
    remove(&rootfs.join("var/lib/dbus/machine-id"))?;
    let ssh = rootfs.join("etc/ssh");
    let entries = std::fs::read_dir(&ssh).map_err(BuildError::io(STEP, &ssh))?;
    for entry in entries {
        let path = entry.map_err(BuildError::io(STEP, &ssh))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("ssh_host_") {
            remove(&path)?;
        }
    }
    let archives = rootfs.join("var/cache/apt/archives");
    if let Ok(entries) = std::fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "deb") {
                remove(&entry.path())?;
            }
        }
    }
    Ok(())
}

pub fn grub_cfg(filesystem_uuid: &str, kernel: &str, initrd: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
terminal_input serial console\n\
terminal_output serial console\n\
set default=0\n\
set timeout=1\n\
menuentry 'Debian GNU/Linux (kiln golden image)' {{\n\
\tlinux /boot/{kernel} root=UUID={filesystem_uuid} ro console=tty0 console=ttyS0,115200n8\n\
\tinitrd /boot/{initrd}\n\
}}\n"
    )
}

/// The newest `vmlinuz-*` in `/boot` and its `initrd.img-*`.
fn kernel_and_initrd(rootfs: &Path) -> Result<(String, String), BuildError> {
    let boot = rootfs.join("boot");
    let mut kernels: Vec<String> = std::fs::read_dir(&boot)
        .map_err(BuildError::io(STEP, &boot))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("vmlinuz-"))
        .collect();
    kernels.sort();
    let kernel = kernels.pop().ok_or_else(|| BuildError::Invalid {
        step: STEP,
        message: format!("no vmlinuz-* in {}", boot.display()),
    })?;
    let initrd = format!("initrd.img-{}", &kernel["vmlinuz-".len()..]);
    if !boot.join(&initrd).is_file() {
        return Err(BuildError::Invalid {
            step: STEP,
            message: format!("no {initrd} beside {kernel} in {}", boot.display()),
        });
    }
    Ok((kernel, initrd))
}

fn write(rootfs: &Path, relative: &str, text: &str) -> Result<(), BuildError> {
    let path: PathBuf = rootfs.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(BuildError::io(STEP, parent))?;
    }
    std::fs::write(&path, text).map_err(BuildError::io(STEP, &path))
}

fn remove(path: &Path) -> Result<(), BuildError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(BuildError::io(STEP, path)(error))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_the_uuid_on_the_serial_console() {
        let cfg = grub_cfg(
            "1234",
            "vmlinuz-6.1.0-1-cloud-amd64",
            "initrd.img-6.1.0-1-cloud-amd64",
        );
        assert!(cfg.contains("linux /boot/vmlinuz-6.1.0-1-cloud-amd64 root=UUID=1234 ro"));
        assert!(cfg.contains("console=ttyS0"));
        assert!(cfg.contains("initrd /boot/initrd.img-6.1.0-1-cloud-amd64"));
    }
}
