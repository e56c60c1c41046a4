//! The build pipeline: debootstrap → guest configuration → raw disk
//! (sfdisk, mkfs.ext4 -d, grub) → qcow2, in a work dir inside the cache,
//! renamed into place when complete. One build at a time per cache
//! (a lock file); a waiting build finds the image the first one made.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::cache::{self, Cache, CachedImage, DISK_FILE, MANIFEST_FILE, WORK_PREFIX};
use crate::layout::{BOOT_CODE_BYTES, DiskLayout, SECTOR};
use crate::{BuildError, Recipe, guest, tools};

/// grub's core image: enough to read an msdos-partitioned ext4 disk and
/// boot Linux from `grub.cfg` with a serial console; no module is loaded
/// from the filesystem.
const GRUB_MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "ext2",
    "normal",
    "linux",
    "configfile",
    "serial",
    "terminal",
];
const GRUB_PREFIX: &str = "(hd0,msdos1)/boot/grub";

/// What the build is doing, reported before each long step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    CacheHit(String),
    Waiting(String),
    Debootstrap { suite: String, packages: usize },
    Configure,
    Filesystem,
    Bootloader,
    Convert,
    Done(String),
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::CacheHit(path) => write!(f, "cached: {path}"),
            Stage::Waiting(lock) => write!(f, "waiting for another build ({lock})"),
            Stage::Debootstrap { suite, packages } => write!(
                f,
                "debootstrap {suite} with {packages} packages (about 2 minutes)"
            ),
            Stage::Configure => write!(f, "configuring the guest (cloud-init, fstab, grub.cfg)"),
            Stage::Filesystem => {
                write!(f, "partitioning and writing ext4 (mkfs.ext4 -d, no mounts)")
            }
            Stage::Bootloader => write!(f, "installing grub (boot.img, core.img)"),
            Stage::Convert => write!(f, "converting to qcow2"),
            Stage::Done(path) => write!(f, "built: {path}"),
        }
    }
}

/// The recipe's image from the cache, built first if it is not there.
pub fn build(
    recipe: &Recipe,
    cache: &Cache,
    progress: &mut dyn FnMut(&Stage),
) -> Result<CachedImage, BuildError> {
    if let Some(image) = cache.lookup(recipe) {
        progress(&Stage::CacheHit(image.path.display().to_string()));
        return Ok(image);
    }
    if !tools::is_root() {
        return Err(BuildError::NotRoot);
    }
    tools::check_all()?;
    std::fs::create_dir_all(&cache.dir).map_err(BuildError::io("prepare cache", &cache.dir))?;
    let lock_path = cache.dir.join(".lock");
    let lock = File::create(&lock_path).map_err(BuildError::io("lock cache", &lock_path))?;
    if lock.try_lock().is_err() {
        progress(&Stage::Waiting(lock_path.display().to_string()));
        lock.lock()
            .map_err(BuildError::io("lock cache", &lock_path))?;
    }
    if let Some(image) = cache.lookup(recipe) {
        progress(&Stage::CacheHit(image.path.display().to_string()));
        return Ok(image);
    }
    sweep_stale_work_dirs(cache)?;
    let work = tempfile::Builder::new()
        .prefix(WORK_PREFIX)
        .tempdir_in(&cache.dir)
        .map_err(BuildError::io("make work dir", &cache.dir))?;
    let image = build_in(recipe, cache, work.path(), progress)?;
    progress(&Stage::Done(image.path.display().to_string()));
    Ok(image)
}

fn build_in(
    recipe: &Recipe,
    cache: &Cache,
    work: &Path,
    progress: &mut dyn FnMut(&Stage),
) -> Result<CachedImage, BuildError> {
    let rootfs = work.join("rootfs");
    let rootfs_arg = rootfs.display().to_string();
    progress(&Stage::Debootstrap {
        suite: recipe.suite.clone(),
        packages: recipe.packages.len(),
    });
    let include = format!("--include={}", recipe.packages.join(","));
    tools::run(
        "debootstrap",
        "debootstrap",
        &[
            "--variant=minbase",
            &include,
            &recipe.suite,
            &rootfs_arg,
            &recipe.mirror,
        ],
    )?;

    progress(&Stage::Configure);
    let uuid = recipe.filesystem_uuid().to_string();
    guest::configure(&rootfs, &uuid)?;

    progress(&Stage::Filesystem);
    let layout = DiskLayout::new(recipe.disk_bytes);
    let raw = work.join("disk.raw");
    let raw_arg = raw.display().to_string();
    File::create(&raw)
        .and_then(|file| file.set_len(recipe.disk_bytes))
        .map_err(BuildError::io("create raw disk", &raw))?;
    let script = work.join("sfdisk.script");
    std::fs::write(&script, layout.sfdisk_script())
        .map_err(BuildError::io("partition", &script))?;
    tools::run(
        "partition",
        "sh",
        &[
            "-c",
            "sfdisk --no-reread --no-tell-kernel \"$1\" < \"$2\"",
            "sh",
            &raw_arg,
            &script.display().to_string(),
        ],
    )?;
    let offset = format!("offset={}", layout.partition_offset());
    let size = format!("{}k", layout.filesystem_kib());
    tools::run(
        "make filesystem",
        "mkfs.ext4",
        &[
            "-F",
            "-q",
            "-L",
            "kiln-root",
            "-U",
            &uuid,
            "-d",
            &rootfs_arg,
            "-E",
            &offset,
            &raw_arg,
            &size,
        ],
    )?;

    progress(&Stage::Bootloader);
    let core = work.join("core.img");
    let core_arg = core.display().to_string();
    let mut args = vec!["-O", "i386-pc", "-p", GRUB_PREFIX, "-o", &core_arg];
    args.extend_from_slice(GRUB_MODULES);
    tools::run("grub core image", "grub-mkimage", &args)?;
    write_boot_code(&raw, &core, &layout)?;

    progress(&Stage::Convert);
    let out = work.join("out");
    std::fs::create_dir(&out).map_err(BuildError::io("convert", &out))?;
    let qcow2 = out.join(DISK_FILE);
    tools::run(
        "convert",
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-c",
            &raw_arg,
            &qcow2.display().to_string(),
        ],
    )?;
    let file_bytes = std::fs::metadata(&qcow2)
        .map_err(BuildError::io("convert", &qcow2))?
        .len();
    let final_dir = cache.entry_dir(recipe);
    let image = cache::manifest(recipe, &final_dir.join(DISK_FILE), file_bytes);
    let manifest_path = out.join(MANIFEST_FILE);
    let text = serde_json::to_string_pretty(&image).map_err(|error| BuildError::Invalid {
        step: "write manifest",
        message: error.to_string(),
    })?;
    std::fs::write(&manifest_path, text)
        .map_err(BuildError::io("write manifest", &manifest_path))?;
    std::fs::rename(&out, &final_dir).map_err(BuildError::io("store in cache", &final_dir))?;
    Ok(image)
}

/// boot.img's code to sector 0 (the partition table stays), core.img from sector 1.
fn write_boot_code(raw: &Path, core: &Path, layout: &DiskLayout) -> Result<(), BuildError> {
    const STEP: &str = "install grub";
    let boot_path = Path::new(tools::GRUB_I386_PC).join("boot.img");
    let boot = std::fs::read(&boot_path).map_err(BuildError::io(STEP, &boot_path))?;
    let core_bytes = std::fs::read(core).map_err(BuildError::io(STEP, core))?;
    if boot.len() < BOOT_CODE_BYTES {
        return Err(BuildError::Invalid {
            step: STEP,
            message: format!("{} is only {} bytes", boot_path.display(), boot.len()),
        });
    }
    if core_bytes.len() as u64 > layout.core_image_max_bytes() {
        return Err(BuildError::Invalid {
            step: STEP,
            message: format!(
                "core.img is {} bytes; the gap before the partition holds {}",
                core_bytes.len(),
                layout.core_image_max_bytes()
            ),
        });
    }
    let mut disk = std::fs::OpenOptions::new()
        .write(true)
        .open(raw)
        .map_err(BuildError::io(STEP, raw))?;
    disk.write_all(&boot[..BOOT_CODE_BYTES])
        .and_then(|()| disk.seek(SeekFrom::Start(SECTOR)).map(|_| ()))
        .and_then(|()| disk.write_all(&core_bytes))
        .and_then(|()| disk.sync_all())
        .map_err(BuildError::io(STEP, raw))
}

/// Work dirs a killed build left (we hold the lock, so none is in use).
fn sweep_stale_work_dirs(cache: &Cache) -> Result<(), BuildError> {
    let entries =
        std::fs::read_dir(&cache.dir).map_err(BuildError::io("sweep cache", &cache.dir))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(BuildError::io("sweep cache", &path))?;
        }
    }
    Ok(())
}
