//! What tgtd holds, read from `tgtadm --op show --mode target`: an indented text listing,
//! one `Target N: IQN` block per target with its sections (`LUN information:`,
//! `Account information:`, `ACL information:`, `I_T nexus information:`).

use std::path::PathBuf;

/// One target as tgtd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// tgtd's target id.
    pub tid: u32,
    pub iqn: String,
    /// Every LUN, including tgt's own LUN 0 (the controller, no backing file).
    pub luns: Vec<LunState>,
    /// CHAP users bound to the target; a mutual-CHAP user has `outgoing`.
    pub accounts: Vec<BoundAccount>,
    /// Allowed initiator addresses and names (`ALL` when everyone is).
    pub acl: Vec<String>,
    /// Logged-in initiators (I_T nexuses).
    pub sessions: usize,
}

/// One LUN of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunState {
    pub id: u32,
    /// `disk`, `controller`, …
    pub kind: String,
    pub serial: String,
    pub backing: Option<PathBuf>,
    pub read_only: bool,
}

/// A CHAP user bound to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundAccount {
    pub user: String,
    /// The target's own credential for mutual CHAP.
    pub outgoing: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Other,
    Luns,
    Accounts,
    Acl,
    Nexus,
}

/// Parses the whole listing; lines it does not know are skipped (newer tgt versions add some).
pub(super) fn parse_targets(text: &str) -> Vec<TargetState> {
    let mut targets: Vec<TargetState> = Vec::new();
    let mut section = Section::Other;
    for line in text.lines() {
        let depth = line.len() - line.trim_start().len();
        let line = line.trim();
        if depth == 0 {
            if let Some(target) = target_header(line) {
                targets.push(target);
            }
            section = Section::Other;
            continue;
        }
        let Some(target) = targets.last_mut() else {
            continue;
        };
        if depth == 4 {
            section = match line {
                "LUN information:" => Section::Luns,
                "Account information:" => Section::Accounts,
                "ACL information:" => Section::Acl,
                "I_T nexus information:" => Section::Nexus,
                _ => Section::Other,
            };
            continue;
        }
        match section {
            Section::Luns => lun_line(target, depth, line),
            Section::Accounts if depth == 8 => {
                let (user, outgoing) = match line.strip_suffix(" (outgoing)") {
                    Some(user) => (user, true),
                    None => (line, false),
                };
                target.accounts.push(BoundAccount {
                    user: user.to_string(),
                    outgoing,
                });
            }
            Section::Acl if depth == 8 => target.acl.push(line.to_string()),
            Section::Nexus if depth == 8 && line.starts_with("I_T nexus:") => {
                target.sessions += 1;
            }
            _ => {}
        }
    }
    targets
}

/// `Target 1: iqn.…`
fn target_header(line: &str) -> Option<TargetState> {
    let rest = line.strip_prefix("Target ")?;
    let (tid, iqn) = rest.split_once(": ")?;
    Some(TargetState {
        tid: tid.parse().ok()?,
        iqn: iqn.trim().to_string(),
        luns: Vec::new(),
        accounts: Vec::new(),
        acl: Vec::new(),
        sessions: 0,
    })
}

fn lun_line(target: &mut TargetState, depth: usize, line: &str) {
    if depth == 8 {
        if let Some(id) = line.strip_prefix("LUN: ").and_then(|id| id.parse().ok()) {
            target.luns.push(LunState {
                id,
                kind: String::new(),
                serial: String::new(),
                backing: None,
                read_only: false,
            });
        }
        return;
    }
    let Some(lun) = target.luns.last_mut() else {
        return;
    };
    let Some((key, value)) = line.split_once(':') else {
        return;
    };
    let value = value.trim();
    match key {
        "Type" => lun.kind = value.to_string(),
        "SCSI SN" => lun.serial = value.to_string(),
        "Readonly" => lun.read_only = value == "Yes",
        "Backing store path" if value != "None" && !value.is_empty() => {
            lun.backing = Some(PathBuf::from(value));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tgt 1.0.85's listing, as measured here (one session, CHAP and an address ACL).
    const LISTING: &str = "Target 1: iqn.2005-10.org.freenas.ctl:t1
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 3
            Initiator: iqn.2024-01.test:node alias: none
            Connection: 0
                IP Address: 10.213.99.2
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Readonly: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: abc123
            Size: 67 MB, Block size: 512
            Online: Yes
            Readonly: Yes
            Backing store type: rdwr
            Backing store path: /tmp/kx/lun.img
            Backing store flags: 
    Account information:
        u1
        target-user (outgoing)
    ACL information:
        10.213.99.2
        iqn.2024-01.test:node
Target 2: iqn.2005-10.org.freenas.ctl:empty
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
";

    #[test]
    fn a_listing_becomes_targets_with_luns_accounts_acls_and_sessions() {
        let targets = parse_targets(LISTING);
        assert_eq!(targets.len(), 2);
        let first = &targets[0];
        assert_eq!(first.tid, 1);
        assert_eq!(first.iqn, "iqn.2005-10.org.freenas.ctl:t1");
        assert_eq!(first.sessions, 1);
        assert_eq!(first.luns.len(), 2);
        assert_eq!(first.luns[0].kind, "controller");
        assert_eq!(first.luns[0].backing, None);
        assert_eq!(first.luns[1].id, 1);
        assert_eq!(first.luns[1].serial, "abc123");
        assert!(first.luns[1].read_only);
        assert_eq!(
            first.luns[1].backing,
            Some(PathBuf::from("/tmp/kx/lun.img"))
        );
        assert_eq!(
            first.accounts,
            vec![
                BoundAccount {
                    user: "u1".to_string(),
                    outgoing: false
                },
                BoundAccount {
                    user: "target-user".to_string(),
                    outgoing: true
                }
            ]
        );
        assert_eq!(first.acl, vec!["10.213.99.2", "iqn.2024-01.test:node"]);
        let second = &targets[1];
        assert_eq!((second.tid, second.sessions), (2, 0));
        assert!(second.accounts.is_empty() && second.acl.is_empty());
    }

    #[test]
    fn no_targets_is_an_empty_list() {
        assert!(parse_targets("").is_empty());
    }
}
