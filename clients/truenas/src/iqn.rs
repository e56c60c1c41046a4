//! The iSCSI initiator name kiln gives each node.
//!
//! Nodes cloned from one template share the IQN open-iscsi generated in it,
//! and an initiator group can only tell nodes apart by IQN; so kiln names
//! every node itself, stably, from the cluster and node names:
//! `iqn.2026-01.invalid.kiln:<cluster>:<node>`.
//!
//! RFC 3720 §3.2.6: `iqn.` + the year-month a naming authority held its
//! domain + the reversed domain + `:` + a unique string; RFC 3722: lower
//! case, only `a-z 0-9 - . :`, at most 223 bytes. kiln owns no domain, so
//! its authority is `kiln.invalid` — `.invalid` is reserved (RFC 6761),
//! nobody can hold it, and no vendor's names can collide with kiln's.

/// `iqn.<year-month>.<reversed domain>` of kiln's initiator names.
pub const KILN_IQN_AUTHORITY: &str = "iqn.2026-01.invalid.kiln";

/// RFC 3720: an iSCSI name is at most 223 bytes.
pub const MAX_IQN_LENGTH: usize = 223;

/// A cluster or node name part longer than this is shortened (with a hash
/// of the whole), which keeps every name far below the 223-byte limit.
const MAX_PART_LENGTH: usize = 64;

/// Why no initiator name can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make an iSCSI initiator name: the {what} name is empty")]
pub struct IqnError {
    pub what: &'static str,
}

/// The initiator name for `node` of `cluster`. Pure and stable: the same
/// names give the same IQN on every run; different names give different
/// IQNs (a name that had to be changed to fit the rules carries a hash of
/// the original, so `Node_1` and `node-1` stay apart).
pub fn initiator_name(cluster: &str, node: &str) -> Result<String, IqnError> {
    let cluster = iqn_part(cluster).ok_or(IqnError { what: "cluster" })?;
    let node = iqn_part(node).ok_or(IqnError { what: "node" })?;
    Ok(format!("{KILN_IQN_AUTHORITY}:{cluster}:{node}"))
}

/// Whether `name` is a well-formed `iqn.` name (RFC 3720/3722).
pub fn is_valid_iqn(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c);
    if name.len() > MAX_IQN_LENGTH || !name.chars().all(allowed) {
        return false;
    }
    let Some(rest) = name.strip_prefix("iqn.") else {
        return false;
    };
    let (date, authority) = match rest.split_once('.') {
        Some(parts) => parts,
        None => return false,
    };
    let date_ok = date.len() == 7
        && date.as_bytes()[4] == b'-'
        && date[..4].chars().all(|c| c.is_ascii_digit())
        && date[5..].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m));
    let domain = authority.split(':').next().unwrap_or_default();
    let domain_ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    date_ok && domain_ok
}

/// One name made to fit: lower case, other characters as `-`, shortened
/// when long; a hash of the original marks any change.
fn iqn_part(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    if mapped == name && mapped.len() <= MAX_PART_LENGTH {
        return Some(mapped);
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()));
    let keep = MAX_PART_LENGTH - hash.len() - 1;
    let stem: String = mapped.chars().take(keep).collect();
    Some(format!("{}-{hash}", stem.trim_end_matches('-')))
}

/// FNV-1a, 32 bits: tiny, stable across versions and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_read_as_they_are() {
        assert_eq!(
            initiator_name("lab", "k3s-node-1").unwrap(),
            "iqn.2026-01.invalid.kiln:lab:k3s-node-1"
        );
        assert!(is_valid_iqn(&initiator_name("lab", "k3s-node-1").unwrap()));
    }

    #[test]
    fn stable_and_distinct() {
        let a = initiator_name("prod", "worker-1").unwrap();
        assert_eq!(a, initiator_name("prod", "worker-1").unwrap());
        assert_ne!(a, initiator_name("prod", "worker-2").unwrap());
        assert_ne!(a, initiator_name("prod2", "worker-1").unwrap());
        // Rewritten names keep a hash of the original.
        let rewritten = initiator_name("Prod", "Worker_1").unwrap();
        assert!(is_valid_iqn(&rewritten), "{rewritten}");
        assert_ne!(rewritten, initiator_name("prod", "worker-1").unwrap());
        assert_ne!(rewritten, initiator_name("Prod", "Worker 1").unwrap());
        // `:` cannot leak from a part into the structure.
        assert_ne!(
            initiator_name("a:b", "c").unwrap(),
            initiator_name("a", "b:c").unwrap()
        );
    }

    #[test]
    fn always_valid_and_short_enough() {
        let long = "n".repeat(300);
        for (cluster, node) in [
            ("lab", long.as_str()),
            (long.as_str(), long.as_str()),
            ("ÄÖÜ", "ノード"),
            ("a b", "--x--"),
            ("UPPER.case", "dots.are.fine"),
        ] {
            let name = initiator_name(cluster, node).unwrap();
            assert!(is_valid_iqn(&name), "{name}");
            assert!(name.len() <= MAX_IQN_LENGTH, "{name}");
        }
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(initiator_name("", "n").unwrap_err().what, "cluster");
        assert_eq!(initiator_name("c", "  ").unwrap_err().what, "node");
    }

    #[test]
    fn validator_follows_rfc_3720() {
        for good in [
            "iqn.2005-10.org.freenas.ctl:target",
            "iqn.1993-08.org.debian:01:abcdef",
            "iqn.2026-01.invalid.kiln",
        ] {
            assert!(is_valid_iqn(good), "{good}");
        }
        for bad in [
            "iqn.2005-13.org.x:y",
            "iqn.05-10.org.x:y",
            "iqn.2005-10.Org.x:y",
            "eui.02004567A425678D",
            "iqn.2005-10.:x",
            "iqn.2005-10.org..x:y",
            "iqn.2005-10.org.x:y z",
        ] {
            assert!(!is_valid_iqn(bad), "{bad}");
        }
        assert!(!is_valid_iqn(&format!(
            "iqn.2026-01.invalid.kiln:{}",
            "a".repeat(220)
        )));
    }
}
