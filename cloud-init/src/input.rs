//! What kiln supplies at run time, beside the inventory: keys from the
//! secrets store, the instance generation, the MAC Proxmox gave the VM, and
//! extra files and commands from later steps. Every value is checked when it
//! is made, so rendering never writes a malformed value into a node.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kiln_inventory::values::MacAddr;
use secrecy::{ExposeSecret, SecretString};

use crate::error::InputError;

/// Everything a render needs that the inventory does not say.
#[derive(Debug, Clone, Default)]
pub struct RenderInput {
    /// Public keys the SSH user accepts (the cluster's key from the secrets store).
    pub authorized_keys: Vec<SshPublicKey>,
    /// The node's SSH host key, when kiln generated it (so it can pin it before
    /// the first connection). Only the `cicustom` path can deliver it.
    pub host_key: Option<HostKeyPair>,
    /// Changes when the node is replaced; part of the instance-id.
    pub generation: Generation,
    /// The MAC Proxmox gave `net0` when the node has none in the inventory;
    /// read from the cloned VM's config so network-config can match by MAC.
    pub mac: Option<MacAddr>,
    /// Upgrade all packages on first boot (`package_upgrade` / `ciupgrade`).
    pub package_upgrade: bool,
    /// Packages to install beside the ones kiln needs.
    pub packages: Vec<Package>,
    /// Files to write, after kiln's own.
    pub write_files: Vec<WriteFile>,
    /// Commands to run on first boot, after kiln's own.
    pub runcmd: Vec<Command>,
}

/// One OpenSSH public key line: `ALGORITHM BASE64 [COMMENT]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    algorithm: String,
    line: String,
}

/// Key types sshd accepts in authorized_keys that kiln lets through.
const ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl SshPublicKey {
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    pub fn as_str(&self) -> &str {
        &self.line
    }
}

impl FromStr for SshPublicKey {
    type Err = InputError;

    /// Checks what sshd checks: a known algorithm, and a base64 blob that
    /// names the same algorithm. Options before the key are refused.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let line = text.trim();
        let fail = |reason: &str| InputError::PublicKey {
            shown: shorten(line),
            reason: reason.to_owned(),
        };
        if line.chars().any(|c| c.is_control()) {
            return Err(fail(
                "one key per value: it contains a newline or control character",
            ));
        }
        let mut fields = line.split_whitespace();
        let algorithm = fields.next().ok_or_else(|| fail("it is empty"))?;
        if !ALGORITHMS.contains(&algorithm) {
            return Err(fail(&format!(
                "unknown key type `{algorithm}` (expected one of {})",
                ALGORITHMS.join(", ")
            )));
        }
        let blob = fields
            .next()
            .ok_or_else(|| fail("the base64 key data is missing"))?;
        let bytes = STANDARD
            .decode(blob)
            .map_err(|_| fail("the key data is not base64"))?;
        if blob_algorithm(&bytes) != Some(algorithm.as_bytes()) {
            return Err(fail("the key data does not match its key type"));
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            line: line.to_owned(),
        })
    }
}

/// The algorithm name at the start of an SSH wire-format key blob.
fn blob_algorithm(bytes: &[u8]) -> Option<&[u8]> {
    let length: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let length = usize::try_from(u32::from_be_bytes(length)).ok()?;
    bytes.get(4..4usize.checked_add(length)?)
}

fn shorten(line: &str) -> String {
    let mut shown: String = line.chars().take(40).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    shown
}

impl fmt::Display for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl fmt::Debug for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshPublicKey({})", shorten(&self.line))
    }
}

/// An ed25519 SSH host key pair (OpenSSH formats). The private half stays a
/// secret until it is written into user-data.
#[derive(Debug, Clone)]
pub struct HostKeyPair {
    private: SecretString,
    public: SshPublicKey,
}

impl HostKeyPair {
    /// `private`: the `-----BEGIN OPENSSH PRIVATE KEY-----` block;
    /// `public`: its `ssh-ed25519 …` line.
    pub fn ed25519(private: SecretString, public: &str) -> Result<Self, InputError> {
        let public: SshPublicKey = public.parse()?;
        if public.algorithm() != "ssh-ed25519" {
            return Err(InputError::HostKey(format!(
                "the public key is `{}`, kiln supplies ed25519 host keys only",
                public.algorithm()
            )));
        }
        let pem = private.expose_secret().trim();
        if !pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
            || !pem.ends_with("-----END OPENSSH PRIVATE KEY-----")
        {
            return Err(InputError::HostKey(
                "the private key is not an OpenSSH private key block".to_owned(),
            ));
        }
        Ok(Self { private, public })
    }

    pub fn public(&self) -> &SshPublicKey {
        &self.public
    }

    /// The private key block, with exactly one trailing newline (sshd
    /// refuses a key file without it).
    pub(crate) fn private_pem(&self) -> String {
        format!("{}\n", self.private.expose_secret().trim())
    }
}

/// Which incarnation of a node this is: it changes when the node is
/// replaced, so cloud-init sees a new instance and runs its first-boot
/// modules again. A counter or a run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation(String);

impl Generation {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Generation {
    fn default() -> Self {
        Self::from(1)
    }
}

impl From<u64> for Generation {
    fn from(counter: u64) -> Self {
        Self(counter.to_string())
    }
}

impl FromStr for Generation {
    type Err = InputError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = (1..=64).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InputError::Generation(text.to_owned()))
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Debian package name (policy §5.6.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package(String);

impl Package {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Package {
    type Err = InputError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut chars = text.chars();
        let valid = text.len() >= 2
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.')
            });
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InputError::Package(text.to_owned()))
        }
    }
}

/// A file cloud-init writes on first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFile {
    pub(crate) path: String,
    pub(crate) content: String,
    pub(crate) permissions: Option<u32>,
    pub(crate) owner: Option<String>,
    pub(crate) defer: bool,
}

impl WriteFile {
    pub fn new(path: &str, content: impl Into<String>) -> Result<Self, InputError> {
        let safe = path.starts_with('/')
            && !path.split('/').any(|part| part == "..")
            && !path.chars().any(|c| c == '\n' || c == '\0');
        if !safe {
            return Err(InputError::WritePath(path.to_owned()));
        }
        Ok(Self {
            path: path.to_owned(),
            content: content.into(),
            permissions: None,
            owner: None,
            defer: false,
        })
    }

    /// The file's mode, e.g. `0o600`.
    pub fn permissions(mut self, mode: u32) -> Result<Self, InputError> {
        if mode > 0o7777 {
            return Err(InputError::Permissions {
                path: self.path,
                mode,
            });
        }
        self.permissions = Some(mode);
        Ok(self)
    }

    /// `user` or `user:group`. A user cloud-init creates exists only after
    /// `write_files` ran, so a file owned by one is written late
    /// ([`Self::deferred`]).
    pub fn owner(mut self, owner: &str) -> Result<Self, InputError> {
        let mut parts = owner.splitn(2, ':');
        if !parts.all(is_account_name) {
            return Err(InputError::Owner(owner.to_owned()));
        }
        self.owner = Some(owner.to_owned());
        Ok(self)
    }

    /// Write the file in the final stage, after users and packages exist.
    pub fn deferred(mut self) -> Self {
        self.defer = true;
        self
    }
}

/// A user or group name as Debian's `adduser` accepts it by default
/// (`NAME_REGEX`): a lower-case letter or `_`, then letters, digits, `_`, `-`.
fn is_account_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// A first-boot command as an argument vector: cloud-init runs it without a
/// shell, so nothing in an argument is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(pub(crate) Vec<String>);

impl Command {
    pub fn new<I, S>(argv: I) -> Result<Self, InputError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        if argv.first().is_none_or(String::is_empty) {
            return Err(InputError::EmptyCommand);
        }
        Ok(Self(argv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC/Wqd8fBeliUlUSfo1SQDji2PxCu7lYS6bB7UYNNO70 kiln@test";

    #[test]
    fn public_keys_are_checked_like_sshd_does() {
        let key: SshPublicKey = ED25519.parse().unwrap();
        assert_eq!(key.algorithm(), "ssh-ed25519");
        assert_eq!(key.as_str(), ED25519);
        let mislabelled = ED25519.replace("ssh-ed25519", "ssh-rsa");
        assert!(matches!(
            mislabelled.parse::<SshPublicKey>(),
            Err(InputError::PublicKey { reason, .. }) if reason.contains("does not match")
        ));
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 !!!notbase64",
            "ssh-dss AAAA",
            &format!("{ED25519}\n{ED25519}"),
            &format!("from=\"10.0.0.1\" {ED25519}"),
        ] {
            assert!(bad.parse::<SshPublicKey>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn host_keys_must_be_an_ed25519_openssh_pair() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----";
        let pair = HostKeyPair::ed25519(SecretString::from(pem), ED25519).unwrap();
        assert!(pair.private_pem().ends_with("KEY-----\n"));
        assert!(!format!("{pair:?}").contains("AAAA\n"));
        assert!(HostKeyPair::ed25519(SecretString::from("secret"), ED25519).is_err());
    }

    #[test]
    fn generations_are_short_safe_tokens() {
        assert_eq!(Generation::from(7).as_str(), "7");
        assert!("019a-run.1_x".parse::<Generation>().is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(bad.parse::<Generation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn write_files_refuse_relative_or_escaping_paths_and_wild_modes() {
        assert!(WriteFile::new("/etc/kiln/agent.toml", "x").is_ok());
        for bad in ["etc/x", "/etc/../root/x", "/a\nb"] {
            assert!(WriteFile::new(bad, "x").is_err(), "{bad}");
        }
        let file = WriteFile::new("/x", "").unwrap();
        assert!(file.clone().permissions(0o600).is_ok());
        assert!(file.clone().permissions(0o10000).is_err());
        assert!(file.clone().owner("kiln:kiln").is_ok());
        assert!(file.clone().owner("root").is_ok());
        for bad in ["", "kiln:", "Kiln", "a b", "kiln:kiln:x", "kiln\n"] {
            assert!(file.clone().owner(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_and_packages_are_checked() {
        assert!(Command::new(["systemctl", "start", "x"]).is_ok());
        assert_eq!(
            Command::new(Vec::<String>::new()),
            Err(InputError::EmptyCommand)
        );
        assert!("qemu-guest-agent".parse::<Package>().is_ok());
        assert!("Bad Name".parse::<Package>().is_err());
    }
}
