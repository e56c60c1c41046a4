//! Boots the debian-12 golden image from its own disk under SeaBIOS (QEMU
//! TCG, no `-kernel`), with a NoCloud seed ISO from kiln-cloud-init, and
//! waits for cloud-init's final stage on the serial console. No network
//! device: no traffic leaves the machine.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_cloud_init::Documents;
use kiln_images::{Cache, Recipe, build};

const TIMEOUT: Duration = Duration::from_secs(300);
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/Wqd8fBeliUlUSfo1SQDji2PxCu7lYS6bB7UYNNO70 kiln@boot-test";

/// Kills QEMU on every path, including a failed assertion.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn golden_image_boots_through_grub_to_cloud_init_final() {
    let recipe = Recipe::named("debian-12").unwrap_or_else(|error| panic!("{error}"));
    let cache = Cache::default_location().unwrap_or_else(|error| panic!("{error}"));
    let image = build(&recipe, &cache, &mut |stage| {
        eprintln!("golden image: {stage}")
    })
    .unwrap_or_else(|error| panic!("{error}"));

    let work = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let documents = Documents {
        user_data: format!(
            "#cloud-config\nusers:\n  - name: kiln\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [\"{KEY}\"]\n"
        ),
        meta_data: "instance-id: kiln-boot-test-1\nlocal-hostname: kiln-boot-test\n".to_owned(),
        network_config: "version: 2\nethernets: {}\n".to_owned(),
    };
    let iso =
        kiln_cloud_init::build_cidata_iso(&documents).unwrap_or_else(|error| panic!("{error}"));
    let seed = work.path().join("seed.iso");
    std::fs::write(&seed, iso).unwrap_or_else(|error| panic!("{error}"));
    let log = work.path().join("serial.log");

    let started = Instant::now();
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "2",
        ])
        .args(["-nographic", "-nic", "none", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2,snapshot=on",
            image.path.display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=ide,media=cdrom,format=raw,readonly=on",
            seed.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("qemu-system-x86_64 (Debian qemu-system-x86): {error}"));
    let mut qemu = Qemu(child);

    let text = loop {
        let text = read(&log);
        if text.contains("Cloud-init v.") && text.contains(" finished at ") {
            break text;
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            panic!("QEMU exited ({status}); serial log:\n{text}");
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "no cloud-init final after {TIMEOUT:?}; serial log:\n{text}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("boot to cloud-init final: {:.0?}", started.elapsed());
    assert!(
        text.contains("BOOT_IMAGE=/boot/vmlinuz-"),
        "kernel not started by grub:\n{text}"
    );
    assert!(text.contains("console=ttyS0"), "{text}");
    assert!(
        text.contains("Authorized keys from /home/kiln/.ssh/authorized_keys"),
        "key not installed:\n{text}"
    );
    assert!(
        text.contains("kiln-boot-test"),
        "hostname from meta-data not applied:\n{text}"
    );
    assert!(
        text.contains("BEGIN SSH HOST KEY FINGERPRINTS"),
        "cloud-init made no host keys:\n{text}"
    );
    assert!(
        text.contains("OpenBSD Secure Shell server"),
        "sshd not started:\n{text}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
