//! Running one named step of a node-side procedure: timed, and on failure
//! described by the step's name and the command's stderr — never by the
//! command line, which the caller may not want echoed.

use std::time::{Duration, Instant};

use kiln_ssh::{Privilege, Session, SshError};

/// How much of a failed command's stderr an error keeps (its end).
const STDERR_TAIL: usize = 600;

/// A step that ran to success, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeStep {
    pub name: &'static str,
    #[serde(with = "millis")]
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("{step}: {source}")]
    Ssh {
        step: &'static str,
        #[source]
        source: SshError,
    },
}

impl StepError {
    pub fn step(&self) -> &'static str {
        match self {
            Self::Failed { step, .. } | Self::Ssh { step, .. } => step,
        }
    }
}

/// Runs `line` as root (through `privilege`) and returns its stdout.
pub async fn run_step(
    session: &Session,
    privilege: Privilege,
    step: &'static str,
    line: &str,
    steps: &mut Vec<ProbeStep>,
) -> Result<String, StepError> {
    let started = Instant::now();
    let output = session
        .exec_as(privilege, line)
        .await
        .map_err(|source| StepError::Ssh { step, source })?;
    if !output.status.success() {
        return Err(StepError::Failed {
            step,
            detail: failure_detail(&output.stderr_text(), &output.stdout_text(), &output.status),
        });
    }
    steps.push(ProbeStep {
        name: step,
        took: started.elapsed(),
    });
    Ok(output.stdout_text().into_owned())
}

fn failure_detail(stderr: &str, stdout: &str, status: &kiln_ssh::ExitStatus) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let text = text.trim();
    let tail = match text.char_indices().rev().nth(STDERR_TAIL) {
        Some((cut, _)) => format!("…{}", &text[cut..]),
        None => text.to_owned(),
    };
    if tail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {tail}")
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(
        took: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(took.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_end_of_stderr_and_the_status() {
        let stderr = format!("{}the real reason", "x".repeat(2000));
        let detail = failure_detail(&stderr, "", &kiln_ssh::ExitStatus::Code(24));
        assert!(detail.starts_with("exit status 24: …"), "{detail}");
        assert!(detail.ends_with("the real reason"), "{detail}");
        assert!(detail.len() < 700, "{}", detail.len());
    }

    #[test]
    fn stdout_speaks_when_stderr_is_silent() {
        let detail = failure_detail(
            " ",
            "iscsiadm: No portals found\n",
            &kiln_ssh::ExitStatus::Code(21),
        );
        assert!(detail.ends_with("iscsiadm: No portals found"), "{detail}");
    }
}
