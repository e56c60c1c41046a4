//! Builds (or reuses from the cache) the debian-12 golden image and checks
//! it without mounting anything. Needs root and the Debian packages
//! `cargo xtask setup` installs.

use std::process::Command;

use kiln_images::{Cache, CachedImage, MbrPartition, Recipe, build, read_mbr};

fn golden() -> CachedImage {
    let recipe = Recipe::named("debian-12").unwrap_or_else(|error| panic!("{error}"));
    let cache = Cache::default_location().unwrap_or_else(|error| panic!("{error}"));
    build(&recipe, &cache, &mut |stage| {
        eprintln!("golden image: {stage}")
    })
    .unwrap_or_else(|error| panic!("{error}"))
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn golden_image_is_a_bootable_qcow2_with_cloud_init() {
    let image = golden();
    let again = golden();
    assert_eq!(image, again, "the second build is a cache hit");
    let path = image.path.display().to_string();
    let info = output("qemu-img", &["info", "--output=json", &path]);
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");

    let work = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let raw = work.path().join("disk.raw");
    let raw_arg = raw.display().to_string();
    output("qemu-img", &["convert", "-O", "raw", &path, &raw_arg]);
    let bytes = std::fs::read(&raw).unwrap_or_else(|error| panic!("{error}"));
    let partitions = read_mbr(&bytes[..512]).unwrap_or_else(|| panic!("no MBR signature"));
    assert_eq!(
        partitions,
        vec![MbrPartition {
            bootable: true,
            kind: 0x83,
            first_sector: 2048,
            sectors: (image.disk_bytes / 512 - 2048) as u32
        }]
    );
    let boot_img =
        std::fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        &bytes[..440],
        &boot_img[..440],
        "grub's boot code in sector 0"
    );
    assert!(
        bytes[512..1024].iter().any(|&b| b != 0),
        "grub's core image from sector 1"
    );
    let sfdisk = output("sfdisk", &["-d", &raw_arg]);
    assert!(
        sfdisk.contains("start=        2048") && sfdisk.contains("bootable"),
        "{sfdisk}"
    );

    let partition = work.path().join("part.raw");
    let part_arg = partition.display().to_string();
    std::fs::write(&partition, &bytes[1_048_576..]).unwrap_or_else(|error| panic!("{error}"));
    let stat = |file: &str| output("debugfs", &["-R", &format!("stat {file}"), &part_arg]);
    for file in [
        "/boot/grub/grub.cfg",
        "/etc/cloud",
        "/usr/sbin/qemu-ga",
        "/usr/sbin/sshd",
        "/etc/cloud/cloud.cfg.d/90_kiln_datasources.cfg",
    ] {
        assert!(stat(file).contains("Inode:"), "{file} missing");
    }
    let cat = |file: &str| output("debugfs", &["-R", &format!("cat {file}"), &part_arg]);
    let grub = cat("/boot/grub/grub.cfg");
    let uuid = Recipe::named("debian-12")
        .map(|r| r.filesystem_uuid().to_string())
        .unwrap_or_default();
    assert!(
        grub.contains(&format!("root=UUID={uuid}")) && grub.contains("console=ttyS0"),
        "{grub}"
    );
    let kernel = grub
        .lines()
        .find_map(|line| line.trim().strip_prefix("linux "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    assert!(stat(&kernel).contains("Inode:"), "kernel {kernel} missing");
    assert!(cat("/etc/fstab").contains(&format!("UUID={uuid} / ext4")));
    assert_eq!(cat("/etc/machine-id"), "", "machine-id is empty");
    let ssh = output("debugfs", &["-R", "ls -l /etc/ssh", &part_arg]);
    assert!(!ssh.contains("ssh_host_"), "host keys baked in: {ssh}");
}
