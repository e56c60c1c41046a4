//! A running kiln lab with real guests, driven the way a person would drive
//! it: `kiln-lab serve --backend qemu` in the background, the collector
//! (`kiln serve`) inside the lab's network namespace, and kiln commands run
//! there with `kiln-lab exec`. The end-to-end tests and `cargo xtask demo`
//! both use it, so the demo shows exactly what the tests check.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Inside the lab's namespace, on the guests' bridge: where agents report.
pub const COLLECTOR_LISTEN: &str = "10.77.0.1:8443";
/// The TrueNAS emulator's API inside the lab's namespace; its iSCSI portal
/// (tgt) and NFS server (nfs-ganesha) listen on the same address.
pub const TRUENAS_LISTEN: &str = "10.77.0.1:8444";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); logs are in {logs}")]
    Failed {
        command: String,
        status: String,
        logs: String,
    },
    #[error("gave up waiting for {what} after {patience:?}; logs are in {logs}")]
    Timeout {
        what: String,
        patience: Duration,
        logs: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is missing: build it first (`cargo build -p kiln -p kiln-lab -p kiln-agent`)")]
    NoBinary(String),
    #[error("{path} names no network namespace: is the qemu lab running?")]
    NoNamespace { path: String },
}

/// The `kiln-agent` that goes onto the guests: the release build when there
/// is one (4 MiB instead of 19: uploading it into a TCG guest is much
/// faster), else the one beside the other binaries.
pub fn agent_binary(bin: &Path) -> PathBuf {
    let release = bin.join("../release/kiln-agent");
    if release.exists() {
        release
    } else {
        bin.join("kiln-agent")
    }
}

/// Where a lab keeps its files, and how its commands are run.
pub struct LabHarness {
    /// The lab's name: its namespace is `kiln-lab-<name>`.
    pub name: String,
    /// The workspace; commands run here (relative inventory paths work).
    pub root: PathBuf,
    /// The lab's own directory: credentials, kiln state, logs, reports.
    pub dir: PathBuf,
    /// Where `kiln`, `kiln-lab` and `kiln-agent` are.
    pub bin: PathBuf,
    env: Vec<(String, OsString)>,
}

impl LabHarness {
    /// A harness for lab `name` with its files under `dir`, for `inventory`.
    pub fn new(name: &str, root: &Path, dir: &Path, bin: &Path, inventory: &Path) -> Self {
        Self {
            name: name.to_owned(),
            root: root.to_owned(),
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            env: vec![
                ("KILN_STATE_DIR".into(), dir.join("state").into()),
                ("KILN_CONFIG_DIR".into(), dir.join("config").into()),
                ("XDG_STATE_HOME".into(), dir.join("xdg").into()),
                ("KILN_INVENTORY".into(), inventory.into()),
                (
                    "KILN_COLLECTOR_URL".into(),
                    format!("https://{COLLECTOR_LISTEN}").into(),
                ),
                ("KILN_AGENT_BINARY".into(), agent_binary(bin).into()),
                ("NO_COLOR".into(), "1".into()),
            ],
        }
    }

    /// The binaries of the workspace's debug build.
    pub fn debug_binaries(root: &Path) -> Result<PathBuf, LabError> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug");
        for name in ["kiln", "kiln-lab", "kiln-agent"] {
            if !bin.join(name).exists() {
                return Err(LabError::NoBinary(bin.join(name).display().to_string()));
            }
        }
        Ok(bin)
    }

    pub fn credentials(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    /// The lab's own data: disks, QEMU sockets and logs.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("lab-data")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Sets a variable for every command the harness runs.
    pub fn set_env(&mut self, key: &str, value: impl Into<OsString>) {
        self.env.retain(|(existing, _)| existing != key);
        self.env.push((key.to_owned(), value.into()));
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.root)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null());
        command
    }

    fn failed(&self, command: &str, status: impl ToString) -> LabError {
        LabError::Failed {
            command: command.to_owned(),
            status: status.to_string(),
            logs: self.logs().display().to_string(),
        }
    }

    /// `kiln ARGS` on the host (no lab access needed: `image build`, …).
    pub fn kiln(&self, args: &[&str]) -> Result<(), LabError> {
        let mut command = self.command(&self.bin.join("kiln"));
        command.args(args);
        self.checked(command, &format!("kiln {}", args.join(" ")))
    }

    /// `kiln-lab exec -- BIN ARGS`: `args[0]` is `kiln` or another binary of
    /// the build, or a program on PATH; output goes to the terminal.
    pub fn in_lab(&self, args: &[&str]) -> Result<(), LabError> {
        let command = self.exec_command(args);
        self.checked(command, &format!("kiln-lab exec -- {}", args.join(" ")))
    }

    /// Like [`LabHarness::in_lab`], capturing the output and the status.
    pub fn in_lab_output(&self, args: &[&str]) -> Result<Output, LabError> {
        let shown = format!("kiln-lab exec -- {}", args.join(" "));
        self.exec_command(args)
            .output()
            .map_err(|source| LabError::Spawn {
                command: shown,
                source,
            })
    }

    fn exec_command(&self, args: &[&str]) -> Command {
        let mut command = self.command(&self.bin.join("kiln-lab"));
        let own = self.bin.join(args[0]);
        let program: OsString = if own.exists() {
            own.into()
        } else {
            args[0].into()
        };
        command
            .args(["exec", "--credentials"])
            .arg(self.credentials())
            .arg("--")
            .arg(program)
            .args(&args[1..]);
        command
    }

    fn checked(&self, mut command: Command, shown: &str) -> Result<(), LabError> {
        println!("$ {shown}");
        let status = command.status().map_err(|source| LabError::Spawn {
            command: shown.to_owned(),
            source,
        })?;
        if !status.success() {
            return Err(self.failed(shown, status));
        }
        Ok(())
    }

    /// A long-running process in its own session, so that the caller's exit
    /// or a Ctrl-C meant for it does not stop it; its pid goes in
    /// `<dir>/<name>.pid`, its output in `<dir>/logs/<name>.log`.
    fn spawn_detached(&self, name: &str, args: &[OsString]) -> Result<u32, LabError> {
        let io = |what, path: &Path| {
            let path = path.display().to_string();
            move |source| LabError::Io { what, path, source }
        };
        let log_path = self.logs().join(format!("{name}.log"));
        std::fs::create_dir_all(self.logs()).map_err(io("cannot create", &self.logs()))?;
        let log = std::fs::File::create(&log_path).map_err(io("cannot create", &log_path))?;
        let err = log.try_clone().map_err(io("cannot open", &log_path))?;
        let mut command = self.command(Path::new("setsid"));
        command.args(args).stdout(log).stderr(err);
        let child = command.spawn().map_err(|source| LabError::Spawn {
            command: format!("setsid {name}"),
            source,
        })?;
        let pid_file = self.dir.join(format!("{name}.pid"));
        std::fs::write(&pid_file, child.id().to_string()).map_err(io("cannot write", &pid_file))?;
        Ok(child.id())
    }

    /// Starts `kiln-lab serve --backend qemu` with `nodes` lab PVE nodes and
    /// waits for its credentials file.
    pub fn start_lab(&self, nodes: u32, extra: &[&str]) -> Result<(), LabError> {
        let credentials = self.credentials();
        let _ = std::fs::remove_file(&credentials);
        let mut args: Vec<OsString> = vec![
            self.bin.join("kiln-lab").into(),
            "serve".into(),
            "--backend".into(),
            "qemu".into(),
            "--instance".into(),
            self.name.clone().into(),
            "--data-dir".into(),
            self.data_dir().into(),
            "--nodes".into(),
            nodes.to_string().into(),
            "--credentials-out".into(),
            credentials.clone().into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.spawn_detached("lab", &args)?;
        self.wait_for(
            "the lab's credentials file",
            Duration::from_secs(120),
            || credentials.exists(),
        )
    }

    /// Starts `kiln serve` inside the lab's namespace and waits until it
    /// accepts connections.
    pub fn start_collector(&self) -> Result<(), LabError> {
        self.spawn_detached(
            "collector",
            &[
                self.bin.join("kiln-lab").into(),
                "exec".into(),
                "--credentials".into(),
                self.credentials().into(),
                "--".into(),
                self.bin.join("kiln").into(),
                "serve".into(),
                "--listen".into(),
                COLLECTOR_LISTEN.into(),
            ],
        )?;
        let (host, port) = COLLECTOR_LISTEN
            .split_once(':')
            .unwrap_or((COLLECTOR_LISTEN, ""));
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        self.wait_for("the collector to listen", Duration::from_secs(60), || {
            self.in_lab_output(&["bash", "-c", &probe])
                .is_ok_and(|output| output.status.success())
        })
    }

    /// Starts the TrueNAS emulator inside the lab's namespace with its real
    /// data path (tgt, nfs-ganesha), waits for its credentials and hands
    /// them to every later command as `KILN_TRUENAS_ENDPOINT`,
    /// `KILN_TRUENAS_FINGERPRINT` and `KILN_TRUENAS_KEY`.
    pub fn start_truenas(&mut self) -> Result<(), LabError> {
        let lab = json_file(&self.credentials());
        let namespace = lab["namespace"]
            .as_str()
            .ok_or_else(|| LabError::NoNamespace {
                path: self.credentials().display().to_string(),
            })?
            .to_owned();
        let credentials = self.truenas_credentials();
        let data = self.dir.join("truenas");
        std::fs::create_dir_all(&data).map_err(|source| LabError::Io {
            what: "cannot create",
            path: data.display().to_string(),
            source,
        })?;
        // `ip netns exec` becomes the emulator: the pid file names it, so
        // `down` can ask it to stop tgt and ganesha before the namespace goes.
        self.spawn_detached(
            "truenas",
            &[
                "ip".into(),
                "netns".into(),
                "exec".into(),
                namespace.clone().into(),
                self.bin.join("kiln-lab").into(),
                "serve-truenas".into(),
                "--listen".into(),
                TRUENAS_LISTEN.into(),
                "--namespace".into(),
                namespace.into(),
                "--data-dir".into(),
                data.into(),
                "--credentials-out".into(),
                credentials.clone().into(),
                "--request-log".into(),
                self.truenas_request_log().into(),
            ],
        )?;
        self.wait_for(
            "the TrueNAS emulator's credentials",
            Duration::from_secs(60),
            || credentials.exists(),
        )?;
        let nas = json_file(&credentials);
        for (variable, field) in [
            ("KILN_TRUENAS_ENDPOINT", "endpoint"),
            ("KILN_TRUENAS_FINGERPRINT", "fingerprint"),
            ("KILN_TRUENAS_KEY", "api_key"),
        ] {
            let value = nas[field].as_str().unwrap_or_default().to_owned();
            self.set_env(variable, value);
        }
        Ok(())
    }

    pub fn truenas_credentials(&self) -> PathBuf {
        self.dir.join("truenas.json")
    }

    /// One JSON line per call the emulator answered.
    pub fn truenas_request_log(&self) -> PathBuf {
        self.dir.join("truenas-requests.jsonl")
    }

    /// Asks the emulator to stop (it takes its tgt and ganesha down with
    /// it), and kills what is left after a bounded wait.
    fn stop_truenas(&self) {
        let Ok(pid) = std::fs::read_to_string(self.dir.join("truenas.pid")) else {
            return;
        };
        let pid = pid.trim().to_owned();
        let _ = Command::new("kill")
            .arg(&pid)
            .stderr(Stdio::null())
            .status();
        let started = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    }

    fn wait_for(
        &self,
        what: &str,
        patience: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), LabError> {
        let started = Instant::now();
        while !ready() {
            if started.elapsed() > patience {
                return Err(LabError::Timeout {
                    what: what.to_owned(),
                    patience,
                    logs: self.logs().display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    /// Stops the collector and the lab (`kiln-lab down`: namespace, QEMU,
    /// disks) and removes the lab's directory.
    pub fn down(&self) -> Result<(), LabError> {
        self.stop_truenas();
        let pid_file = self.dir.join("collector.pid");
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            // The collector runs in its own session: end the whole group.
            let _ = Command::new("kill")
                .args(["--", &format!("-{}", pid.trim())])
                .stderr(Stdio::null())
                .status();
        }
        let mut command = self.command(&self.bin.join("kiln-lab"));
        command
            .args(["down", "--instance", &self.name, "--data-dir"])
            .arg(self.data_dir());
        self.checked(command, &format!("kiln-lab down --instance {}", self.name))?;
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|source| LabError::Io {
                what: "cannot remove",
                path: self.dir.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// A credentials file's JSON; `null` when it is missing or unreadable (its
/// fields then read as absent, and the caller names what it lacks).
fn json_file(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}
