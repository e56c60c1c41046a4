//! Reading and writing OpenSSH `known_hosts` lines.
//!
//! Understood: plain and hashed (`|1|salt|hash`) host names, comma lists,
//! negated entries (`!host`), `[host]:port` for ports other than 22, any
//! whitespace between fields, `@revoked` lines. Not understood (such lines
//! never match, so they can only make a key "unknown", never "trusted"):
//! wildcard patterns (`*`, `?`) and `@cert-authority` lines.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ssh_key::PublicKey;

/// One key recorded for the host being looked up.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub key: PublicKey,
    /// An `@revoked` line: this key must never be accepted.
    pub revoked: bool,
}

/// A line that names the host but whose key cannot be parsed.
#[derive(Debug)]
pub struct BadLine {
    pub line: usize,
}

/// How OpenSSH writes a host in known_hosts: `host`, or `[host]:port`.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The keys recorded for `host:port` in `text` (a known_hosts file's content).
pub fn entries_for(text: &str, host: &str, port: u16) -> Result<Vec<Entry>, BadLine> {
    let wanted = host_pattern(host, port);
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let mut fields = raw.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let mut revoked = false;
        if let Some(marker) = first.strip_prefix('@') {
            if marker != "revoked" {
                continue;
            }
            revoked = true;
            let Some(hosts) = fields.next() else {
                continue;
            };
            first = hosts;
        }
        if !hosts_match(first, &wanted) {
            continue;
        }
        let (Some(algorithm), Some(data)) = (fields.next(), fields.next()) else {
            return Err(BadLine { line });
        };
        let key = PublicKey::from_openssh(&format!("{algorithm} {data}"))
            .map_err(|_| BadLine { line })?;
        entries.push(Entry { line, key, revoked });
    }
    Ok(entries)
}

/// Whether a comma-separated host list names `wanted`; a matching negated
/// entry (`!host`) wins over everything else on the line.
fn hosts_match(list: &str, wanted: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if negated.eq_ignore_ascii_case(wanted) {
                return false;
            }
        } else if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_matches(hashed, wanted);
        } else {
            matched |= pattern.eq_ignore_ascii_case(wanted);
        }
    }
    matched
}

/// `salt|hash`, both base64: HMAC-SHA1(salt, host) == hash (OpenSSH's
/// `HashKnownHosts`).
fn hashed_matches(hashed: &str, wanted: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, wanted.as_bytes(), &hash).is_ok()
}

/// One known_hosts line for `key` at `host:port`, without the comment.
pub fn line_for(host: &str, port: u16, key: &PublicKey) -> Result<String, ssh_key::Error> {
    let mut key = key.clone();
    key.set_comment("");
    Ok(format!(
        "{} {}",
        host_pattern(host, port),
        key.to_openssh()?
    ))
}

/// Appends `line` to the file at `path`, creating it (mode 0600) and its
/// directory when missing, and synced to disk before returning.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let needs_newline = std::fs::read(path)?
        .last()
        .is_some_and(|last| *last != b'\n');
    if needs_newline {
        file.write_all(b"\n")?;
    }
    file.write_all(line.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// An exclusive lock for changing the file at `path`, held until the
/// returned file is dropped: a change reads the file, edits it and renames
/// a new one over it, so two at once (nodes pinned in parallel, or two
/// kiln processes) would lose one of them. The lock is on `<path>.lock`,
/// because the rename replaces `path` itself.
pub fn lock_for_change(path: &Path) -> std::io::Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&lock_path)?;
    file.lock()?;
    Ok(file)
}

/// Replaces the file at `path` with `content` (mode 0600): written to a
/// temporary file in the same directory, synced, then renamed over it.
pub fn replace_file(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(content.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::{Ed25519Keypair, PrivateKey};

    fn key(seed: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    fn openssh(seed: u8) -> String {
        key(seed).to_openssh().unwrap()
    }

    #[test]
    fn plain_ports_tabs_and_comments() {
        let text = format!(
            "# comment\n\nother {}\n[h]:2222\t{}  kiln\nh {}\n",
            openssh(1),
            openssh(2),
            openssh(3)
        );
        let found = entries_for(&text, "h", 2222).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 4);
        assert_eq!(found[0].key, key(2));
        let default_port = entries_for(&text, "h", 22).unwrap();
        assert_eq!(default_port[0].key, key(3));
        assert!(entries_for(&text, "nobody", 22).unwrap().is_empty());
    }

    #[test]
    fn lists_negation_and_revoked() {
        let text = format!(
            "a,b {}\n!b,c {}\n@revoked b {}\n@cert-authority b {}\n",
            openssh(1),
            openssh(2),
            openssh(3),
            openssh(4)
        );
        let found = entries_for(&text, "b", 22).unwrap();
        assert_eq!(found.len(), 2);
        assert!(!found[0].revoked);
        assert!(found[1].revoked);
        assert_eq!(found[1].key, key(3));
    }

    #[test]
    fn a_broken_line_for_the_host_is_reported_not_skipped() {
        let text = "h ssh-ed25519 not-base64\nother ssh-ed25519 garbage\n";
        assert_eq!(entries_for(text, "h", 22).unwrap_err().line, 1);
    }

    #[test]
    fn hashed_names_written_by_ssh_keygen_match() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!("{}\n", line_for("10.0.0.7", 2200, &key(5)).unwrap()),
        )
        .unwrap();
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(&file)
            .status();
        let Ok(status) = status else {
            eprintln!("ssh-keygen not installed; skipping");
            return;
        };
        assert!(status.success());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        let found = entries_for(&text, "10.0.0.7", 2200).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, key(5));
        assert!(entries_for(&text, "10.0.0.8", 2200).unwrap().is_empty());
    }

    #[test]
    fn append_creates_the_file_private_and_adds_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts/lab");
        append_line(&file, "a x").unwrap();
        std::fs::write(&file, "a x").unwrap();
        append_line(&file, "b y").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a x\nb y\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
