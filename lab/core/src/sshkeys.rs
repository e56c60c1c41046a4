//! OpenSSH public key lines: recognising one, and making a stand-in one (a simulated
//! guest's host key, a test's key).

use base64::Engine;
use sha2::{Digest, Sha256};

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Whether `line` is `TYPE BASE64 [comment]` whose blob starts with the same type name.
pub fn is_public_key(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
        return false;
    };
    if !KEY_TYPES.contains(&kind) {
        return false;
    }
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(blob) else {
        return false;
    };
    let Some(len) = raw
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    else {
        return false;
    };
    raw.get(4..4 + len) == Some(kind.as_bytes()) && raw.len() > 4 + len
}

/// An ed25519 public key line for `material` (not a real key pair: nothing can sign with
/// it, which is all a simulated host key or a test's authorized key needs).
pub fn ed25519_public_key(material: &[u8], comment: &str) -> String {
    let kind = b"ssh-ed25519";
    let key = Sha256::digest(material);
    let mut blob = Vec::new();
    blob.extend_from_slice(&(kind.len() as u32).to_be_bytes());
    blob.extend_from_slice(kind);
    blob.extend_from_slice(&(key.len() as u32).to_be_bytes());
    blob.extend_from_slice(&key);
    format!(
        "ssh-ed25519 {} {comment}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_keys_are_keys_and_garbage_is_not() {
        assert!(is_public_key(&ed25519_public_key(b"k", "me@host")));
        assert!(!is_public_key("ssh-ed25519 AAAAnotakey"));
        assert!(!is_public_key("hello"));
    }
}
