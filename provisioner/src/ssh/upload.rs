//! Putting a file on a host so that the target is never half-written: the
//! data goes over SFTP to a temporary name in the target's directory, is
//! fsynced and given its mode, its sha256 is checked on the host, and only
//! then `mv -f` (a rename within one directory, so atomic) puts it in place.
//! russh-sftp 3.0 has no `posix-rename@openssh.com`, hence `mv` over exec.
//!
//! With [`Privilege::Sudo`] SFTP (which runs as the login user) writes a
//! private staging file in the login user's home; root copies it to the
//! temporary name, so the result is owned by root.

use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::client::{Session, TEARDOWN};
use super::error::SshError;
use super::exec::{NulInArgument, Privilege, shell_line};

/// What to upload.
#[derive(Debug, Clone, Copy)]
pub enum UploadSource<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// What landed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Lower-case hex, checked on the host with `sha256sum`.
    pub sha256: String,
    pub bytes: u64,
}

const CHUNK: usize = 256 * 1024;

impl Session {
    /// Uploads `source` to `remote_path` (absolute) with `mode`, as the
    /// login user.
    pub async fn upload(
        &self,
        source: UploadSource<'_>,
        remote_path: &str,
        mode: u32,
    ) -> Result<Uploaded, SshError> {
        self.upload_as(Privilege::Login, source, remote_path, mode)
            .await
    }

    /// Uploads `source` to `remote_path` (absolute) with `mode`, written by
    /// `privilege`. On any failure the target is left as it was and the
    /// temporary files are removed.
    pub async fn upload_as(
        &self,
        privilege: Privilege,
        source: UploadSource<'_>,
        remote_path: &str,
        mode: u32,
    ) -> Result<Uploaded, SshError> {
        let plan = Plan::new(self, privilege, remote_path)?;
        let limit = self.timeouts().command;
        let result = match timeout(limit, plan.carry_out(self, source, mode & 0o7777)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout {
                at: self.at().to_owned(),
                step: plan.step.clone(),
                timeout: limit,
            }),
        };
        if result.is_err() {
            plan.clean_up(self).await;
        }
        result
    }
}

/// The names one upload uses.
struct Plan {
    privilege: Privilege,
    step: String,
    target: String,
    /// Where SFTP writes: the temporary name itself, or (sudo) a staging
    /// file in the login user's home.
    staging: String,
    quoted: Quoted,
}

/// The same names quoted for the shell.
struct Quoted {
    target: String,
    directory: String,
    temporary: String,
    staging: String,
}

impl Plan {
    fn new(session: &Session, privilege: Privilege, remote_path: &str) -> Result<Self, SshError> {
        let bad = |reason| SshError::BadRemotePath {
            at: session.at().to_owned(),
            path: remote_path.to_owned(),
            reason,
        };
        let (directory, name) = remote_path
            .rsplit_once('/')
            .filter(|_| remote_path.starts_with('/'))
            .ok_or_else(|| bad("the remote path must be absolute"))?;
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad("the remote path must name a file"));
        }
        let directory = if directory.is_empty() { "/" } else { directory };
        let unique = uuid::Uuid::now_v7().simple();
        let temporary = format!("{}/.{name}.kiln-{unique}", directory.trim_end_matches('/'));
        let staging = match privilege {
            Privilege::Login => temporary.clone(),
            Privilege::Sudo => format!(".kiln-upload-{unique}"),
        };
        let step = format!("upload {remote_path}");
        let quote = |word: &str| {
            shell_line([word]).map_err(|NulInArgument| SshError::Unquotable {
                at: session.at().to_owned(),
                step: step.clone(),
            })
        };
        let quoted = Quoted {
            target: quote(remote_path)?,
            directory: quote(directory)?,
            temporary: quote(&temporary)?,
            staging: quote(&staging)?,
        };
        Ok(Self {
            privilege,
            step,
            target: remote_path.to_owned(),
            staging,
            quoted,
        })
    }

    async fn carry_out(
        &self,
        session: &Session,
        source: UploadSource<'_>,
        mode: u32,
    ) -> Result<Uploaded, SshError> {
        let staging_mode = match self.privilege {
            Privilege::Login => mode,
            Privilege::Sudo => 0o600,
        };
        let uploaded = self.write_over_sftp(session, source, staging_mode).await?;
        if self.privilege == Privilege::Sudo {
            let Quoted {
                staging, temporary, ..
            } = &self.quoted;
            let copy = format!(
                "umask 077 && cp -- {staging} {temporary} && chmod {mode:o} {temporary} \
                 && sync -- {temporary}"
            );
            session.run(Privilege::Sudo, &copy).await?;
            session
                .run(Privilege::Login, &format!("rm -f -- {staging}"))
                .await?;
        }
        let checksum = format!("sha256sum -- {}", self.quoted.temporary);
        let output = session.run(self.privilege, &checksum).await?;
        let remote = output
            .stdout_text()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if remote != uploaded.sha256 {
            return Err(SshError::ChecksumMismatch {
                at: session.at().to_owned(),
                path: self.target.clone(),
                local: uploaded.sha256,
                remote,
            });
        }
        let Quoted {
            target,
            directory,
            temporary,
            ..
        } = &self.quoted;
        let rename = format!("mv -f -- {temporary} {target} && sync -- {directory}");
        session.run(self.privilege, &rename).await?;
        Ok(uploaded)
    }

    async fn write_over_sftp(
        &self,
        session: &Session,
        source: UploadSource<'_>,
        mode: u32,
    ) -> Result<Uploaded, SshError> {
        let channel = session.open_channel(&self.step).await?;
        if let Err(source) = channel.request_subsystem(true, "sftp").await {
            let _ = timeout(TEARDOWN, channel.close()).await;
            return Err(self.protocol(session, source));
        }
        // The stream closes the channel when it is dropped, on every path.
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|source| self.sftp(session, "start SFTP", source))?;
        sftp.set_timeout(session.timeouts().command.as_secs().max(1));
        let result = self.write_file(session, &sftp, source, mode).await;
        if let Err(error) = sftp.close().await {
            tracing::debug!(%error, "ssh: closing the SFTP session");
        }
        result
    }

    async fn write_file(
        &self,
        session: &Session,
        sftp: &SftpSession,
        source: UploadSource<'_>,
        mode: u32,
    ) -> Result<Uploaded, SshError> {
        let private = FileAttributes {
            permissions: Some(0o600),
            ..FileAttributes::default()
        };
        let mut file = sftp
            .open_with_flags_and_attributes(
                self.staging.clone(),
                OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
                private,
            )
            .await
            .map_err(|source| self.sftp(session, &format!("create {}", self.staging), source))?;
        let mut reader: Box<dyn AsyncRead + Unpin + Send + '_> = match source {
            UploadSource::Bytes(bytes) => Box::new(bytes),
            UploadSource::File(path) => Box::new(
                tokio::fs::File::open(path)
                    .await
                    .map_err(|source| self.local_io(session, path, source))?,
            ),
        };
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = reader
                .read(&mut buffer)
                .await
                .map_err(|error| match source {
                    UploadSource::File(path) => self.local_io(session, path, error),
                    UploadSource::Bytes(_) => self.remote_io(session, "read", error),
                })?;
            let Some(chunk) = buffer.get(..read).filter(|chunk| !chunk.is_empty()) else {
                break;
            };
            hasher.update(chunk);
            bytes += chunk.len() as u64;
            file.write_all(chunk)
                .await
                .map_err(|source| self.remote_io(session, "write", source))?;
        }
        file.flush()
            .await
            .map_err(|source| self.remote_io(session, "write", source))?;
        file.sync_all()
            .await
            .map_err(|source| self.sftp(session, "fsync", source))?;
        let mode = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::default()
        };
        file.set_metadata(mode)
            .await
            .map_err(|source| self.sftp(session, "chmod", source))?;
        file.shutdown()
            .await
            .map_err(|source| self.remote_io(session, "close", source))?;
        Ok(Uploaded {
            sha256: hex::encode(hasher.finalize()),
            bytes,
        })
    }

    /// Removes what a failed upload left; the target itself is untouched.
    async fn clean_up(&self, session: &Session) {
        let mut removals = vec![(self.privilege, &self.quoted.temporary)];
        if self.privilege == Privilege::Sudo {
            removals.push((Privilege::Login, &self.quoted.staging));
        }
        for (privilege, path) in removals {
            if let Err(error) = session
                .exec_as(privilege, &format!("rm -f -- {path}"))
                .await
            {
                tracing::debug!(%error, "ssh: removing a failed upload's temporary file");
            }
        }
    }

    fn protocol(&self, session: &Session, source: russh::Error) -> SshError {
        SshError::Protocol {
            at: session.at().to_owned(),
            step: format!("{}: start SFTP", self.step),
            source: Box::new(source),
        }
    }

    fn sftp(
        &self,
        session: &Session,
        what: &str,
        source: russh_sftp::client::error::Error,
    ) -> SshError {
        SshError::Sftp {
            at: session.at().to_owned(),
            step: format!("{}: {what}", self.step),
            source: Box::new(source),
        }
    }

    fn remote_io(&self, session: &Session, what: &str, source: std::io::Error) -> SshError {
        SshError::Io {
            at: session.at().to_owned(),
            step: format!("{}: {what}", self.step),
            source,
        }
    }

    fn local_io(&self, session: &Session, path: &Path, source: std::io::Error) -> SshError {
        SshError::Io {
            at: session.at().to_owned(),
            step: format!("{}: read the local file {}", self.step, path.display()),
            source,
        }
    }
}
