//! Deploying `kiln-agent` to a host over SSH, safe to repeat: when the host
//! already runs this binary with this config, token and unit, nothing is
//! touched. Otherwise: glibc check, then binary, config, token and unit
//! (each an atomic, checksum-verified upload), then systemd, then the record
//! `installed.json` last, so an interrupted deploy is redone next time.

mod bundle;
mod glibc;
mod layout;

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_agent::config::AgentConfig;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub use bundle::{AgentBundle, BINARY_ENV, BundleError};
pub use glibc::{GlibcProblem, GlibcVersion, check as check_glibc};
pub use layout::{BINARY_PATH, Installed, Layout, MANIFEST_PATH, UNIT_NAME, UNIT_PATH};

use kiln_ssh::{Privilege, Session, SshError, UploadFile, UploadSource, shell_line};

/// What to install besides the binary.
#[derive(Debug, Clone)]
pub struct DeployInput {
    pub config: AgentConfig,
    /// The agent's bearer token, written to `config.collector.token_file`
    /// (mode 0600, root).
    pub token: SecretString,
    /// The systemd unit (`agent/systemd/kiln-agent.service`).
    pub unit: String,
    /// Where the host's `/` is for this deploy: `/` except in tests, which
    /// deploy into a scratch directory.
    pub root: String,
    /// Reload, enable and (re)start the unit, and require it active. Tests
    /// against a plain sshd turn this off: there is no systemd to talk to.
    pub manage_service: bool,
    /// How to act as root; `None`: directly as root, else `sudo -n`.
    pub privilege: Option<Privilege>,
}

impl DeployInput {
    pub fn new(config: AgentConfig, token: SecretString, unit: impl Into<String>) -> Self {
        Self {
            config,
            token,
            unit: unit.into(),
            root: "/".to_owned(),
            manage_service: true,
            privilege: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployOutcome {
    /// Something differed and was (re)installed.
    Installed,
    /// The host already had exactly this; nothing was written.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(
        "{at}: deploy the agent: {problem}; build kiln-agent against an older glibc \
         (or statically) or upgrade the host"
    )]
    Glibc { at: String, problem: GlibcProblem },
    #[error("{at}: deploy the agent: {reason}")]
    Input { at: String, reason: String },
    #[error("{at}: deploy the agent: {UNIT_NAME} is {state} after the restart:\n{status}")]
    NotActive {
        at: String,
        state: String,
        status: String,
    },
}

/// What [`Remote::probe`] found.
struct Found {
    /// Exactly this install, every file intact, the unit active.
    current: bool,
    /// The unit file is the wanted one and an earlier deploy (which
    /// reloaded systemd) recorded it: systemd already knows it.
    unit_loaded: bool,
}

/// How long a restarted unit may take to become active, polled each second.
const ACTIVATION_CHECKS: u32 = 15;

/// Installs or updates the agent on the host behind `session`.
pub async fn deploy(
    session: &Session,
    bundle: &AgentBundle,
    input: &DeployInput,
) -> Result<DeployOutcome, DeployError> {
    let at = session.target().to_string();
    let input_error = |reason: String| DeployError::Input {
        at: at.clone(),
        reason,
    };
    let privilege = input
        .privilege
        .unwrap_or_else(|| Privilege::root_for(&session.target().user));
    let layout = Layout::new(&input.root, &input.config).map_err(input_error)?;
    let mut config = serde_json::to_string_pretty(&input.config)
        .map_err(|error| input_error(format!("the agent config: {error}")))?;
    config.push('\n');
    let wanted = Installed {
        version: bundle.version().to_owned(),
        binary_sha256: bundle.sha256().to_owned(),
        config_sha256: sha256(config.as_bytes()),
        unit_sha256: sha256(input.unit.as_bytes()),
        token_sha256: sha256(input.token.expose_secret().as_bytes()),
    };
    let remote = Remote {
        session,
        privilege,
        layout: &layout,
    };
    let found = remote.probe(&wanted, input.manage_service).await?;
    if found.current {
        tracing::info!(target = %at, "agent: already installed, unchanged");
        return Ok(DeployOutcome::Unchanged);
    }
    if bundle.glibc().is_some() {
        let getconf = session.exec("getconf GNU_LIBC_VERSION").await?;
        let reported = getconf.status.success().then(|| getconf.stdout_text());
        check_glibc(bundle.glibc(), reported.as_deref()).map_err(|problem| DeployError::Glibc {
            at: at.clone(),
            problem,
        })?;
    }
    remote.make_directories().await?;
    let files = [
        (bundle.binary(), &layout.binary, 0o755),
        (config.as_bytes(), &layout.config, 0o644),
        (input.token.expose_secret().as_bytes(), &layout.token, 0o600),
        (input.unit.as_bytes(), &layout.unit, 0o644),
    ];
    remote.put(&files).await?;
    if input.manage_service {
        remote.restart(!found.unit_loaded).await?;
    }
    // The record goes last, so a deploy interrupted before this point is
    // redone in full next time.
    let mut record = serde_json::to_string_pretty(&wanted)
        .map_err(|error| input_error(format!("the install record: {error}")))?;
    record.push('\n');
    remote
        .put(&[(record.as_bytes(), &layout.manifest, 0o600)])
        .await?;
    tracing::info!(target = %at, version = %bundle.version(), "agent: installed");
    Ok(DeployOutcome::Installed)
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The host side of one deploy.
struct Remote<'a> {
    session: &'a Session,
    privilege: Privilege,
    layout: &'a Layout,
}

impl Remote<'_> {
    /// What the host has, asked in one command, since each command on a
    /// slow guest costs seconds: the record, every file's checksum and
    /// (with `running`) whether the unit is active.
    async fn probe(&self, wanted: &Installed, running: bool) -> Result<Found, DeployError> {
        let files = [
            (&self.layout.binary, &wanted.binary_sha256),
            (&self.layout.config, &wanted.config_sha256),
            (&self.layout.token, &wanted.token_sha256),
            (&self.layout.unit, &wanted.unit_sha256),
        ];
        let mut sums = vec!["sha256sum", "--"];
        sums.extend(files.iter().map(|(path, _)| path.as_str()));
        // The record and the sums are split by a NUL, which neither holds.
        let mut line = format!(
            "cat -- {} ; printf '\\0' && {}",
            self.line(&[&self.layout.manifest])?,
            self.line(&sums)?
        );
        if running {
            line.push_str(" && ");
            line.push_str(&self.line(&["systemctl", "is-active", "--quiet", UNIT_NAME])?);
        }
        let probe = self.session.exec_as(self.privilege, &line).await?;
        let (record, sums) = match probe.stdout.iter().position(|byte| *byte == 0) {
            Some(split) => (&probe.stdout[..split], &probe.stdout[split + 1..]),
            None => (&probe.stdout[..0], &probe.stdout[..0]),
        };
        let recorded = match serde_json::from_slice::<Installed>(record) {
            Ok(recorded) => Some(recorded),
            Err(_) if record.is_empty() => None,
            Err(error) => {
                tracing::warn!(
                    target = %self.session.target(),
                    %error,
                    "agent: {} is unreadable; reinstalling",
                    self.layout.manifest
                );
                None
            }
        };
        // `HASH  PATH` per file that exists, in argument order.
        let sums = String::from_utf8_lossy(sums);
        let on_host: BTreeMap<&str, &str> = sums
            .lines()
            .filter_map(|line| line.split_once("  "))
            .map(|(hash, path)| (path, hash))
            .collect();
        let matches = |path: &str, expected: &str| on_host.get(path) == Some(&expected);
        let files_match = files.iter().all(|(path, expected)| matches(path, expected));
        let unit_loaded = recorded
            .as_ref()
            .is_some_and(|recorded| recorded.unit_sha256 == wanted.unit_sha256)
            && matches(&self.layout.unit, &wanted.unit_sha256);
        Ok(Found {
            current: probe.status.success() && recorded.as_ref() == Some(wanted) && files_match,
            unit_loaded,
        })
    }

    async fn make_directories(&self) -> Result<(), DeployError> {
        let mut words = vec!["mkdir", "-p", "--"];
        words.extend(self.layout.directories());
        self.session
            .run(self.privilege, &self.line(&words)?)
            .await?;
        Ok(())
    }

    /// Uploads `(content, path, mode)` files as one batch.
    async fn put(&self, files: &[(&[u8], &String, u32)]) -> Result<(), DeployError> {
        let files: Vec<UploadFile<'_>> = files
            .iter()
            .map(|&(data, path, mode)| UploadFile {
                source: UploadSource::Bytes(data),
                path,
                mode,
            })
            .collect();
        self.session.upload_all_as(self.privilege, &files).await?;
        Ok(())
    }

    /// Enables the unit and restarts it (a restart also starts it), then
    /// waits until it is active. systemd reloads its configuration only
    /// when the unit file is new or changed (`reload`): on a slow guest a
    /// reload, which reruns every generator, takes most of a deploy, and
    /// `enable` would do a second one without `--no-reload`.
    async fn restart(&self, reload: bool) -> Result<(), DeployError> {
        // The first state check rides along with the restart.
        let line = format!(
            "{}systemctl enable --no-reload {UNIT_NAME} && systemctl restart {UNIT_NAME} \
             && {{ systemctl is-active {UNIT_NAME} || true; }}",
            if reload {
                "systemctl daemon-reload && "
            } else {
                ""
            }
        );
        let mut state = self
            .session
            .run(self.privilege, &line)
            .await?
            .stdout_text()
            .trim()
            .to_owned();
        for _ in 1..ACTIVATION_CHECKS {
            match state.as_str() {
                "active" => return Ok(()),
                "activating" | "reloading" => {}
                _ => break,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let line = self.line(&["systemctl", "is-active", UNIT_NAME])?;
            let output = self.session.exec_as(self.privilege, &line).await?;
            state = output.stdout_text().trim().to_owned();
        }
        if state == "active" {
            return Ok(());
        }
        let line = self.line(&["systemctl", "status", "--no-pager", "--lines=20", UNIT_NAME])?;
        let status = self.session.exec_as(self.privilege, &line).await?;
        Err(DeployError::NotActive {
            at: self.session.target().to_string(),
            state,
            status: status.stdout_text().into_owned(),
        })
    }

    fn line(&self, words: &[&str]) -> Result<String, DeployError> {
        shell_line(words.iter().copied()).map_err(|error| DeployError::Input {
            at: self.session.target().to_string(),
            reason: error.to_string(),
        })
    }
}
