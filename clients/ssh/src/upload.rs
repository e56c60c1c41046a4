//! Putting files on a host so that no target is ever half-written: the data
//! goes over SFTP to a temporary name in the target's directory, is fsynced
//! and given its mode, its sha256 is checked on the host, and only then
//! `mv -f` (a rename within one directory, so atomic) puts it in place.
//! russh-sftp 3.0 has no `posix-rename@openssh.com`, hence `mv` over exec.
//!
//! With [`Privilege::Sudo`] SFTP (which runs as the login user) writes a
//! private staging file in the login user's home; root copies it to the
//! temporary name, so the result is owned by root.
//!
//! Several files go as one batch: one SFTP session and two commands for all
//! of them, because on a slow host (a TCG guest) every command costs a
//! process start, a shell and sudo's PAM stack — seconds, not milliseconds.
//! Each target is still replaced atomically on its own; the set is not.

use std::collections::BTreeSet;
use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::client::{Session, TEARDOWN};
use crate::command::{NulInArgument, Privilege, shell_line};
use crate::error::SshError;

/// What to upload.
#[derive(Debug, Clone, Copy)]
pub enum UploadSource<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// One file of a batch: its content, its absolute target path and mode.
#[derive(Debug, Clone, Copy)]
pub struct UploadFile<'a> {
    pub source: UploadSource<'a>,
    pub path: &'a str,
    pub mode: u32,
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
        let file = UploadFile {
            source,
            path: remote_path,
            mode,
        };
        let mut uploaded = self.upload_all_as(privilege, &[file]).await?;
        uploaded.pop().ok_or_else(|| SshError::BadRemotePath {
            at: self.at().to_owned(),
            path: remote_path.to_owned(),
            reason: "nothing was uploaded",
        })
    }

    /// Uploads every file of `files`, written by `privilege`, and returns
    /// what landed, in order. Nothing is renamed into place before every
    /// file arrived with the right checksum; on any failure the temporary
    /// files are removed and the targets not yet renamed are untouched.
    pub async fn upload_all_as(
        &self,
        privilege: Privilege,
        files: &[UploadFile<'_>],
    ) -> Result<Vec<Uploaded>, SshError> {
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch::new(self, privilege, files)?;
        let count = u32::try_from(files.len()).unwrap_or(u32::MAX);
        let limit = self.timeouts().command.saturating_mul(count);
        let result = match timeout(limit, batch.carry_out(self, files)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout {
                at: self.at().to_owned(),
                step: batch.step.clone(),
                timeout: limit,
            }),
        };
        if result.is_err() {
            batch.clean_up(self).await;
        }
        result
    }
}

/// The names one batch uses.
struct Batch {
    privilege: Privilege,
    step: String,
    files: Vec<Names>,
}

/// One file's names.
struct Names {
    target: String,
    /// Where SFTP writes: the temporary name itself, or (sudo) a staging
    /// file in the login user's home.
    staging: String,
    mode: u32,
    quoted: Quoted,
}

/// The same names quoted for the shell.
struct Quoted {
    target: String,
    directory: String,
    temporary: String,
    staging: String,
}

impl Batch {
    fn new(
        session: &Session,
        privilege: Privilege,
        files: &[UploadFile<'_>],
    ) -> Result<Self, SshError> {
        let paths: Vec<&str> = files.iter().map(|file| file.path).collect();
        let step = format!("upload {}", paths.join(", "));
        let files = files
            .iter()
            .map(|file| Names::new(session, privilege, &step, file))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            privilege,
            step,
            files,
        })
    }

    async fn carry_out(
        &self,
        session: &Session,
        files: &[UploadFile<'_>],
    ) -> Result<Vec<Uploaded>, SshError> {
        let uploaded = self.write_over_sftp(session, files).await?;
        let temporaries = self.joined(|quoted| &quoted.temporary);
        // Sudo: root copies each staging file to its temporary name (so root
        // owns it), gives it its mode, removes the staging copies and
        // syncs; then both cases checksum every temporary in one command.
        let mut line = String::new();
        if self.privilege == Privilege::Sudo {
            line.push_str("umask 077");
            for names in &self.files {
                let Quoted {
                    staging, temporary, ..
                } = &names.quoted;
                line.push_str(&format!(
                    " && cp -- {staging} {temporary} && chmod {:o} {temporary}",
                    names.mode
                ));
            }
            let stagings = self.joined(|quoted| &quoted.staging);
            line.push_str(&format!(
                " && rm -f -- {stagings} && sync -- {temporaries} && "
            ));
        }
        line.push_str(&format!("sha256sum -- {temporaries}"));
        let output = session.run(self.privilege, &line).await?;
        let text = output.stdout_text();
        let mut sums = text
            .lines()
            .filter_map(|line| line.split_whitespace().next());
        for (names, local) in self.files.iter().zip(&uploaded) {
            let remote = sums.next().unwrap_or_default().to_ascii_lowercase();
            if remote != local.sha256 {
                return Err(SshError::ChecksumMismatch {
                    at: session.at().to_owned(),
                    path: names.target.clone(),
                    local: local.sha256.clone(),
                    remote,
                });
            }
        }
        let renames: Vec<String> = self
            .files
            .iter()
            .map(|names| {
                format!(
                    "mv -f -- {} {}",
                    names.quoted.temporary, names.quoted.target
                )
            })
            .collect();
        let directories: BTreeSet<&str> = self
            .files
            .iter()
            .map(|names| names.quoted.directory.as_str())
            .collect();
        let directories: Vec<&str> = directories.into_iter().collect();
        let rename = format!(
            "{} && sync -- {}",
            renames.join(" && "),
            directories.join(" ")
        );
        session.run(self.privilege, &rename).await?;
        Ok(uploaded)
    }

    /// Every file's quoted name of one kind, space-separated.
    fn joined(&self, name: impl Fn(&Quoted) -> &String) -> String {
        let names: Vec<&str> = self
            .files
            .iter()
            .map(|names| name(&names.quoted).as_str())
            .collect();
        names.join(" ")
    }

    async fn write_over_sftp(
        &self,
        session: &Session,
        files: &[UploadFile<'_>],
    ) -> Result<Vec<Uploaded>, SshError> {
        let channel = session.open_channel(&self.step).await?;
        if let Err(source) = channel.request_subsystem(true, "sftp").await {
            let _ = timeout(TEARDOWN, channel.close()).await;
            return Err(self.protocol(session, source));
        }
        // The stream closes the channel when it is dropped, on every path.
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|source| sftp_error(session, &self.step, "start SFTP", source))?;
        sftp.set_timeout(session.timeouts().command.as_secs().max(1));
        let mut uploaded = Vec::with_capacity(files.len());
        let mut result = Ok(());
        for (names, file) in self.files.iter().zip(files) {
            let staging_mode = match self.privilege {
                Privilege::Login => names.mode,
                Privilege::Sudo => 0o600,
            };
            match names
                .write_file(session, &sftp, file.source, staging_mode)
                .await
            {
                Ok(done) => uploaded.push(done),
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        if let Err(error) = sftp.close().await {
            tracing::debug!(%error, "ssh: closing the SFTP session");
        }
        result.map(|()| uploaded)
    }

    /// Removes what a failed batch left; targets are untouched.
    async fn clean_up(&self, session: &Session) {
        let mut leftovers = self.joined(|quoted| &quoted.temporary);
        if self.privilege == Privilege::Sudo {
            leftovers.push(' ');
            leftovers.push_str(&self.joined(|quoted| &quoted.staging));
        }
        if let Err(error) = session
            .exec_as(self.privilege, &format!("rm -f -- {leftovers}"))
            .await
        {
            tracing::debug!(%error, "ssh: removing a failed upload's temporary files");
        }
    }

    fn protocol(&self, session: &Session, source: russh::Error) -> SshError {
        SshError::Protocol {
            at: session.at().to_owned(),
            step: format!("{}: start SFTP", self.step),
            source: Box::new(source),
        }
    }
}

impl Names {
    fn new(
        session: &Session,
        privilege: Privilege,
        batch_step: &str,
        file: &UploadFile<'_>,
    ) -> Result<Self, SshError> {
        let remote_path = file.path;
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
        let quote = |word: &str| {
            shell_line([word]).map_err(|NulInArgument| SshError::Unquotable {
                at: session.at().to_owned(),
                step: batch_step.to_owned(),
            })
        };
        let quoted = Quoted {
            target: quote(remote_path)?,
            directory: quote(directory)?,
            temporary: quote(&temporary)?,
            staging: quote(&staging)?,
        };
        Ok(Self {
            target: remote_path.to_owned(),
            staging,
            mode: file.mode & 0o7777,
            quoted,
        })
    }

    fn step(&self) -> String {
        format!("upload {}", self.target)
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

    fn sftp(
        &self,
        session: &Session,
        what: &str,
        source: russh_sftp::client::error::Error,
    ) -> SshError {
        sftp_error(session, &self.step(), what, source)
    }

    fn remote_io(&self, session: &Session, what: &str, source: std::io::Error) -> SshError {
        SshError::Io {
            at: session.at().to_owned(),
            step: format!("{}: {what}", self.step()),
            source,
        }
    }

    fn local_io(&self, session: &Session, path: &Path, source: std::io::Error) -> SshError {
        SshError::Io {
            at: session.at().to_owned(),
            step: format!("{}: read the local file {}", self.step(), path.display()),
            source,
        }
    }
}

fn sftp_error(
    session: &Session,
    step: &str,
    what: &str,
    source: russh_sftp::client::error::Error,
) -> SshError {
    SshError::Sftp {
        at: session.at().to_owned(),
        step: format!("{step}: {what}"),
        source: Box::new(source),
    }
}
