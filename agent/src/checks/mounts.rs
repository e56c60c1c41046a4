//! `/proc/mounts`, shared by the disk and storage checks.

use std::path::PathBuf;

use super::Host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    pub source: String,
    pub point: PathBuf,
    pub fstype: String,
}

pub(super) fn read(host: &Host) -> Result<Vec<Mount>, String> {
    let path = host.proc.join("mounts");
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let source = fields.next()?;
            let point = fields.next()?;
            let fstype = fields.next()?;
            Some(Mount {
                source: unescape(source),
                point: PathBuf::from(unescape(point)),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mount fields as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes_mount_points() {
        let mounts = parse(
            "/dev/vda1 / ext4 rw,relatime 0 0\n\
             10.0.0.5:/tank/media /mnt/my\\040media nfs4 rw 0 0\n",
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].point, PathBuf::from("/mnt/my media"));
        assert_eq!(mounts[1].source, "10.0.0.5:/tank/media");
        assert_eq!(mounts[1].fstype, "nfs4");
    }
}
