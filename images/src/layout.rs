//! The disk's layout: one bootable Linux partition from sector 2048, grub's
//! core image in the gap before it, and a reader for the MBR that proves it.

/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// The partition's first sector (1 MiB alignment, room for grub's core image).
pub const FIRST_SECTOR: u64 = 2048;
/// How much of `boot.img` goes to sector 0: the code before the disk
/// signature and the partition table.
pub const BOOT_CODE_BYTES: usize = 440;

/// Where the partition lies in a disk of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLayout {
    pub disk_bytes: u64,
}

impl DiskLayout {
    pub fn new(disk_bytes: u64) -> Self {
        Self { disk_bytes }
    }

    pub fn partition_offset(&self) -> u64 {
        FIRST_SECTOR * SECTOR
    }

    pub fn partition_sectors(&self) -> u64 {
        (self.disk_bytes / SECTOR).saturating_sub(FIRST_SECTOR)
    }

    /// The filesystem's size in KiB, as `mkfs.ext4` takes it.
    pub fn filesystem_kib(&self) -> u64 {
        self.partition_sectors() * SECTOR / 1024
    }

    /// The room for grub's core image: sector 1 up to the partition.
    pub fn core_image_max_bytes(&self) -> u64 {
        (FIRST_SECTOR - 1) * SECTOR
    }

    /// The `sfdisk` script: an msdos label, one bootable Linux partition.
    pub fn sfdisk_script(&self) -> String {
        format!(
            "label: dos\nunit: sectors\n\nstart={FIRST_SECTOR}, size={}, type=83, bootable\n",
            self.partition_sectors()
        )
    }
}

/// One primary partition entry of an MBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbrPartition {
    pub bootable: bool,
    pub kind: u8,
    pub first_sector: u32,
    pub sectors: u32,
}

/// The used primary partitions of an MBR (the first 512 bytes of a disk),
/// or `None` without the 0x55AA signature.
pub fn read_mbr(sector0: &[u8]) -> Option<Vec<MbrPartition>> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xAA {
        return None;
    }
    let entries = (0..4).filter_map(|index| {
        let entry = &sector0[446 + index * 16..446 + (index + 1) * 16];
        let word = |at: usize| {
            u32::from_le_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
        };
        (entry[4] != 0).then(|| MbrPartition {
            bootable: entry[0] == 0x80,
            kind: entry[4],
            first_sector: word(8),
            sectors: word(12),
        })
    });
    Some(entries.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_gib_disk() {
        let layout = DiskLayout::new(2 * 1024 * 1024 * 1024);
        assert_eq!(layout.partition_offset(), 1_048_576);
        assert_eq!(layout.partition_sectors(), 4_194_304 - 2048);
        assert_eq!(layout.filesystem_kib(), 2 * 1024 * 1024 - 1024);
        assert_eq!(layout.core_image_max_bytes(), 1_048_576 - 512);
        assert_eq!(
            layout.sfdisk_script(),
            "label: dos\nunit: sectors\n\nstart=2048, size=4192256, type=83, bootable\n"
        );
    }

    #[test]
    fn mbr_round_trip() {
        let mut sector = vec![0_u8; 512];
        sector[510] = 0x55;
        sector[511] = 0xAA;
        sector[446] = 0x80;
        sector[446 + 4] = 0x83;
        sector[446 + 8..446 + 12].copy_from_slice(&2048_u32.to_le_bytes());
        sector[446 + 12..446 + 16].copy_from_slice(&4096_u32.to_le_bytes());
        let parts = read_mbr(&sector);
        assert_eq!(
            parts,
            Some(vec![MbrPartition {
                bootable: true,
                kind: 0x83,
                first_sector: 2048,
                sectors: 4096
            }])
        );
        sector[511] = 0;
        assert_eq!(read_mbr(&sector), None);
    }
}
