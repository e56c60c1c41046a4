//! The vocabulary of a remote command, apart from running one: how it
//! ended, what it printed, whose rights it runs with, and how words become
//! one shell command line.

use std::borrow::Cow;
use std::fmt;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(u32),
    Signal { name: String, core_dumped: bool },
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == Self::Code(0)
    }

    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Code(code) => Some(*code),
            Self::Signal { .. } => None,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit status {code}"),
            Self::Signal { name, core_dumped } => {
                write!(f, "killed by signal {name}")?;
                if *core_dumped {
                    write!(f, " (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// A finished command and everything it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    pub fn stderr_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// A piece of output as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// Who a command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// The login user.
    Login,
    /// root through `sudo -n` (never prompts: a password prompt fails at once).
    Sudo,
}

impl Privilege {
    /// What it takes to act as root when logged in as `user`.
    pub fn root_for(user: &str) -> Self {
        if user == "root" {
            Self::Login
        } else {
            Self::Sudo
        }
    }
}

/// An argument held a NUL byte, which no shell command line can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an argument holds a NUL byte, which no shell command line can carry")]
pub struct NulInArgument;

/// `words` as one POSIX shell command line, each word quoted as needed.
pub fn shell_line<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<String, NulInArgument> {
    shlex::try_join(words).map_err(|_| NulInArgument)
}
