//! The node's iSCSI initiator name: the identity TrueNAS's initiator group
//! admits. open-iscsi reads it from one file when `iscsid` starts, so a
//! change restarts `iscsid` (only if it runs: socket activation starts it
//! with the new name otherwise).

use kiln_ssh::{Privilege, Session, UploadFile, UploadSource, shell_line};

use super::script::{StepError, run_step};

pub const INITIATOR_FILE: &str = "/etc/iscsi/initiatorname.iscsi";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiatorChange {
    /// The node already had this name; nothing was written.
    Unchanged,
    /// The name was written and `iscsid` restarted if it ran.
    Written,
}

#[derive(Debug, thiserror::Error)]
#[error("node `{node}`: iSCSI initiator name: {source}")]
pub struct InitiatorError {
    pub node: String,
    #[source]
    pub source: StepError,
}

/// Makes `iqn` the node's initiator name; a node that has it is only read.
pub async fn ensure_initiator_name(
    session: &Session,
    privilege: Privilege,
    node: &str,
    iqn: &str,
) -> Result<InitiatorChange, InitiatorError> {
    let fail = |source| InitiatorError {
        node: node.to_owned(),
        source,
    };
    let mut steps = Vec::new();
    let read = format!("cat {INITIATOR_FILE} 2>/dev/null || true");
    let current = run_step(session, privilege, "read", &read, &mut steps)
        .await
        .map_err(fail)?;
    if configured_name(&current) == Some(iqn) {
        return Ok(InitiatorChange::Unchanged);
    }
    let content = format!(
        "## Written by kiln: this node's name in the cluster's TrueNAS initiator group.\n\
         InitiatorName={iqn}\n"
    );
    session
        .upload_all_as(
            privilege,
            &[UploadFile {
                source: UploadSource::Bytes(content.as_bytes()),
                path: INITIATOR_FILE,
                mode: 0o644,
            }],
        )
        .await
        .map_err(|source| {
            fail(StepError::Ssh {
                step: "write",
                source,
            })
        })?;
    let restart = shell_line(["systemctl", "try-restart", "iscsid.service"]).map_err(|_| {
        fail(StepError::Failed {
            step: "restart iscsid",
            detail: "unquotable".to_owned(),
        })
    })?;
    run_step(session, privilege, "restart iscsid", &restart, &mut steps)
        .await
        .map_err(fail)?;
    Ok(InitiatorChange::Written)
}

/// The `InitiatorName=` of an initiatorname.iscsi file (comments skipped).
fn configured_name(file: &str) -> Option<&str> {
    file.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix("InitiatorName="))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_past_comments() {
        let file = "## DO NOT EDIT OR REMOVE THIS FILE!\n## If you remove this file...\n\
                    InitiatorName=iqn.1993-08.org.debian:01:5a1b2c3d4e5f\n";
        assert_eq!(
            configured_name(file),
            Some("iqn.1993-08.org.debian:01:5a1b2c3d4e5f")
        );
    }

    #[test]
    fn a_commented_name_or_an_empty_file_is_no_name() {
        assert_eq!(configured_name("#InitiatorName=iqn.x:y\n"), None);
        assert_eq!(configured_name(""), None);
    }
}
