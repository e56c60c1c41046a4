//! `sshkeys` the way PVE reads it: the value is URI-escaped; it is unescaped and every
//! non-empty line must be an OpenSSH public key (`PVE::Tools::validate_ssh_public_keys`).

use kiln_lab_core::is_public_key;

/// Unescapes and validates; returns the keys, one per line.
pub(crate) fn decode_sshkeys(value: &str) -> Result<Vec<String>, String> {
    let invalid = || "SSH public key validation error".to_string();
    let text = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| invalid())?;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !is_public_key(line) {
            return Err(invalid());
        }
        keys.push(line.to_string());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_lab_core::ed25519_public_key;

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
