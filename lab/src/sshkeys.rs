//! `sshkeys` the way PVE reads it: the value is URI-escaped; it is unescaped and every
//! non-empty line must be an OpenSSH public key (`PVE::Tools::validate_ssh_public_keys`).

use base64::Engine;

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

/// Unescapes and validates; returns the keys, one per line.
pub(crate) fn decode_sshkeys(value: &str) -> Result<Vec<String>, String> {
    let text = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| "SSH public key validation error".to_string())?;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !is_public_key(line) {
            return Err("SSH public key validation error".to_string());
        }
        keys.push(line.to_string());
    }
    Ok(keys)
}

/// `TYPE BASE64 [comment]`, where the blob starts with the same type name.
fn is_public_key(line: &str) -> bool {
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

/// An ed25519 public key line for `material` (the sim's stand-in for a guest host key or
/// a test key).
pub fn ed25519_public_key(material: &[u8], comment: &str) -> String {
    use sha2::{Digest, Sha256};
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
    fn escaped_keys_decode_and_garbage_fails() {
        let key = ed25519_public_key(b"k", "me@host");
        let escaped = key
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let two = format!("{escaped}%0A{escaped}");
        assert_eq!(decode_sshkeys(&two).unwrap(), vec![key.clone(), key]);
        assert!(decode_sshkeys("ssh-ed25519%20AAAAnotakey").is_err());
        assert!(decode_sshkeys("hello").is_err());
    }
}
