//! Running commands: one channel per command, stdout and stderr kept apart,
//! the exit status read until the server closes the channel (it may come
//! after EOF). The channel is closed on every path. The remote side bounds
//! each command too (coreutils `timeout`, a second after the client gives
//! up): sshd keeps a closed session, and its `MaxSessions` slot, until the
//! command exits, and it ignores signal requests on root logins (no
//! privilege separation there), so closing alone would not end it.

use std::borrow::Cow;
use std::time::Duration;

use russh::{Channel, ChannelMsg, Sig, client};
use tokio::time::timeout;

use crate::client::{Session, TEARDOWN};
use crate::command::{ExecOutput, ExitStatus, NulInArgument, Output, Privilege, shell_line};
use crate::error::SshError;

/// Captured output beyond this fails the command instead of eating memory.
const CAPTURE_LIMIT: usize = 256 * 1024 * 1024;
/// The remote bound on a command is this much later than the client's, so
/// the client reports a timeout rather than `timeout`'s exit status 124.
const REMOTE_GRACE: Duration = Duration::from_secs(1);
/// Commands are named in errors by at most this many characters.
const NAME_LIMIT: usize = 120;

impl Session {
    /// Runs `command` (a shell command line) as the login user and collects
    /// its output. Any exit status is a result, not an error.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput, SshError> {
        self.exec_as(Privilege::Login, command).await
    }

    /// Runs `command` as root through `sudo -n sh -c COMMAND`.
    pub async fn exec_sudo(&self, command: &str) -> Result<ExecOutput, SshError> {
        self.exec_as(Privilege::Sudo, command).await
    }

    /// Runs `command` with `privilege` and collects its output.
    pub async fn exec_as(
        &self,
        privilege: Privilege,
        command: &str,
    ) -> Result<ExecOutput, SshError> {
        let line = self.with_privilege(privilege, command)?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut overflow = false;
        let status = self
            .exec_streaming_line(&line, self.timeouts().command, &mut |output| {
                let (buffer, data) = match output {
                    Output::Stdout(data) => (&mut stdout, data),
                    Output::Stderr(data) => (&mut stderr, data),
                };
                if buffer.len() + data.len() > CAPTURE_LIMIT {
                    overflow = true;
                } else {
                    buffer.extend_from_slice(data);
                }
            })
            .await?;
        if overflow {
            return Err(SshError::OutputTooLarge {
                at: self.at().to_owned(),
                step: step_name(&line),
                limit: CAPTURE_LIMIT,
            });
        }
        Ok(ExecOutput {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs `command` with `privilege`; a non-zero exit is an error that
    /// quotes the tail of stderr.
    pub async fn run(&self, privilege: Privilege, command: &str) -> Result<ExecOutput, SshError> {
        let output = self.exec_as(privilege, command).await?;
        if output.status.success() {
            return Ok(output);
        }
        Err(SshError::Failed {
            at: self.at().to_owned(),
            step: step_name(command),
            stderr: output.stderr_text().into_owned(),
            status: output.status,
        })
    }

    /// Runs `command` as the login user, handing output to `on_output` as it
    /// arrives; gives up (and kills the command) after `limit`.
    pub async fn exec_streaming(
        &self,
        command: &str,
        limit: Duration,
        mut on_output: impl FnMut(Output<'_>) + Send,
    ) -> Result<ExitStatus, SshError> {
        self.exec_streaming_line(command, limit, &mut on_output)
            .await
    }

    fn with_privilege<'a>(
        &self,
        privilege: Privilege,
        command: &'a str,
    ) -> Result<Cow<'a, str>, SshError> {
        match privilege {
            Privilege::Login => Ok(Cow::Borrowed(command)),
            Privilege::Sudo => self
                .quoted(["sudo", "-n", "sh", "-c", command], command)
                .map(Cow::Owned),
        }
    }

    fn quoted<'a>(
        &self,
        words: impl IntoIterator<Item = &'a str>,
        command: &str,
    ) -> Result<String, SshError> {
        shell_line(words).map_err(|NulInArgument| SshError::Unquotable {
            at: self.at().to_owned(),
            step: step_name(command),
        })
    }

    async fn exec_streaming_line(
        &self,
        command: &str,
        limit: Duration,
        on_output: &mut (dyn FnMut(Output<'_>) + Send),
    ) -> Result<ExitStatus, SshError> {
        let step = step_name(command);
        let remote_limit = limit + REMOTE_GRACE;
        let seconds = format!(
            "{}.{:03}",
            remote_limit.as_secs(),
            remote_limit.subsec_millis()
        );
        let bounded = self.quoted(
            ["exec", "timeout", "-k", "5", &seconds, "sh", "-c", command],
            command,
        )?;
        let started = std::time::Instant::now();
        let mut channel = self.open_channel(&step).await?;
        let outcome = timeout(limit, drive(&mut channel, &bounded, on_output)).await;
        let _ = timeout(TEARDOWN, channel.close()).await;
        // On a slow host the number of commands decides a step's time; this
        // line is how to see which ones (`--log-level debug`).
        tracing::debug!(
            target_host = %self.at(),
            %step,
            elapsed_ms = started.elapsed().as_millis(),
            "ssh: command done"
        );
        let at = || self.at().to_owned();
        match outcome {
            Err(_) => Err(SshError::Timeout {
                at: at(),
                step,
                timeout: limit,
            }),
            Ok(Err(Drive::Protocol(source))) => Err(SshError::Protocol {
                at: at(),
                step,
                source: Box::new(source),
            }),
            Ok(Err(Drive::Refused)) => Err(SshError::Refused { at: at(), step }),
            Ok(Ok(None)) => Err(SshError::NoExitStatus { at: at(), step }),
            Ok(Ok(Some(status))) => Ok(status),
        }
    }
}

enum Drive {
    Protocol(russh::Error),
    Refused,
}

async fn drive(
    channel: &mut Channel<client::Msg>,
    command: &str,
    on_output: &mut (dyn FnMut(Output<'_>) + Send),
) -> Result<Option<ExitStatus>, Drive> {
    channel.exec(true, command).await.map_err(Drive::Protocol)?;
    // Nothing is ever written to stdin: a command that reads it sees EOF
    // rather than waiting forever.
    channel.eof().await.map_err(Drive::Protocol)?;
    let mut status = None;
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => on_output(Output::Stdout(&data)),
            ChannelMsg::ExtendedData { data, ext: 1 } => on_output(Output::Stderr(&data)),
            ChannelMsg::ExitStatus { exit_status } => status = Some(ExitStatus::Code(exit_status)),
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                ..
            } => {
                status = Some(ExitStatus::Signal {
                    name: signal(&signal_name),
                    core_dumped,
                });
            }
            ChannelMsg::Failure => return Err(Drive::Refused),
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    Ok(status)
}

fn signal(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// `exec "COMMAND"`, shortened for long scripts.
pub(super) fn step_name(command: &str) -> String {
    match command.char_indices().nth(NAME_LIMIT) {
        Some((cut, _)) => format!("exec {:?}…", &command[..cut]),
        None => format!("exec {command:?}"),
    }
}
