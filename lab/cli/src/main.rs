//! `kiln-lab`: serve a Proxmox-compatible lab or a TrueNAS emulator, hand a lab's
//! credentials to a command, or take a qemu lab down.

mod truenas;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kiln_lab::qemu::host::{self, HostSetup};
use kiln_lab::qemu::record;
use kiln_lab::{Accel, BackendKind, Credentials, FaultConfig, LabConfig};

#[derive(Parser)]
#[command(
    name = "kiln-lab",
    version,
    about = "A Proxmox-VE-compatible lab held to the official API schema"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sim,
    Qemu,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    /// KVM if a short probe boot works, TCG otherwise.
    Auto,
    Kvm,
    Tcg,
}

/// Which qemu lab (`serve`, `down`).
#[derive(Args, Clone)]
struct Instance {
    /// The lab's name: its namespace is `kiln-lab-NAME`.
    #[arg(long, default_value = "default")]
    instance: String,
    /// Disks, sockets, logs (default: $XDG_STATE_HOME/kiln-lab/NAME).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, value_enum, default_value = "sim")]
    backend: BackendArg,
    /// Number of nodes (pve1..pveN).
    #[arg(long, default_value_t = 2)]
    nodes: u32,
    /// Address to listen on: loopback for sim (default 127.0.0.1:8006); for qemu an address
    /// inside the lab's namespace (default: the bridge address, port 8006).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Seeded faults and latencies (YAML, see docs/lab.md).
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Append one JSON line per request here.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Write {"endpoint","fingerprint","token_id","token_secret"} here (mode 0600) once ready.
    #[arg(long)]
    credentials_out: Option<PathBuf>,
    /// Time from a VM's start until its guest agent answers (sim; e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    boot_delay: Duration,
    /// How long tasks run unless the faults file says otherwise.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    task_duration: Duration,
    #[command(flatten)]
    instance: Instance,
    /// qemu: the bridge carrying the gateway address.
    #[arg(long, default_value = "vmbr0")]
    bridge: String,
    /// qemu: the gateway address of the bridge, inside the namespace.
    #[arg(long, default_value = "10.77.0.1/24")]
    bridge_cidr: String,
    /// qemu: also serve the API on this host loopback address (e.g. 127.0.0.1:0).
    #[arg(long)]
    publish: Option<SocketAddr>,
    /// qemu: the accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the PVE API until interrupted.
    Serve(Box<ServeArgs>),
    /// Serve the TrueNAS API (JSON-RPC over WebSocket, 25.10.5) until interrupted.
    ServeTruenas(truenas::ServeTruenasArgs),
    /// Print the KILN_PROXMOX_* variables of a running lab as shell exports.
    Env {
        /// The credentials file (default: $XDG_STATE_HOME/kiln-lab/credentials.json).
        #[arg(long)]
        credentials: Option<PathBuf>,
    },
    /// Run a command with the KILN_PROXMOX_* variables of a running lab set (inside a qemu
    /// lab's network namespace).
    Exec {
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Stop a qemu lab and remove its namespace, QEMU processes, disks and data directory.
    Down {
        #[command(flatten)]
        instance: Instance,
    },
}

pub(crate) fn state_home() -> anyhow::Result<PathBuf> {
    match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => {
            let home =
                std::env::var_os("HOME").context("neither XDG_STATE_HOME nor HOME is set")?;
            Ok(PathBuf::from(home).join(".local/state"))
        }
    }
}

fn default_credentials() -> anyhow::Result<PathBuf> {
    Ok(state_home()?.join("kiln-lab").join("credentials.json"))
}

fn data_dir(instance: &Instance) -> anyhow::Result<PathBuf> {
    match &instance.data_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(state_home()?.join("kiln-lab").join(&instance.instance)),
    }
}

fn read_credentials(path: Option<PathBuf>) -> anyhow::Result<Credentials> {
    let path = match path {
        Some(p) => p,
        None => default_credentials()?,
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is `kiln-lab serve` running?)",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a credentials file", path.display()))
}

fn variables(creds: &Credentials) -> [(&'static str, String); 3] {
    [
        ("KILN_PROXMOX_ENDPOINT", creds.endpoint.clone()),
        ("KILN_PROXMOX_FINGERPRINT", creds.fingerprint.clone()),
        ("KILN_PROXMOX_TOKEN", creds.token()),
    ]
}

pub(crate) fn write_credentials(path: &Path, creds: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(creds)?.as_bytes())?;
    file.sync_all()?;
    // Renamed into place so that readers never see a half-written file.
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A qemu lab prepared on the host before the runtime starts (the namespace must be entered
/// while the process has one thread).
struct QemuLab {
    prepared: host::Prepared,
}

fn prepare_qemu(args: &ServeArgs, credentials: &Path) -> anyhow::Result<QemuLab> {
    let setup = HostSetup {
        instance: args.instance.instance.clone(),
        data_dir: data_dir(&args.instance)?,
        bridge: args.bridge.clone(),
        bridge_cidr: args.bridge_cidr.clone(),
        publish: args.publish,
        credentials: Some(credentials.to_path_buf()),
        accel: match args.accel {
            AccelArg::Auto => None,
            AccelArg::Kvm => Some(Accel::Kvm),
            AccelArg::Tcg => Some(Accel::Tcg),
        },
    };
    let prepared = host::prepare(&setup)?;
    Ok(QemuLab { prepared })
}

fn listen_address(args: &ServeArgs) -> anyhow::Result<SocketAddr> {
    if let Some(listen) = args.listen {
        return Ok(listen);
    }
    match args.backend {
        BackendArg::Sim => Ok(SocketAddr::from(([127, 0, 0, 1], 8006))),
        BackendArg::Qemu => {
            let ip = args
                .bridge_cidr
                .split('/')
                .next()
                .unwrap_or_default()
                .parse::<std::net::IpAddr>()
                .with_context(|| format!("--bridge-cidr {} has no address", args.bridge_cidr))?;
            Ok(SocketAddr::new(ip, 8006))
        }
    }
}

async fn serve(args: ServeArgs, credentials: PathBuf, qemu: Option<QemuLab>) -> anyhow::Result<()> {
    let faults = args
        .faults
        .as_ref()
        .map(|p| FaultConfig::from_file(p))
        .transpose()?;
    let (qemu_options, record, published) = match qemu {
        Some(lab) => (
            Some(lab.prepared.options),
            Some(lab.prepared.record),
            lab.prepared.published,
        ),
        None => (None, None, None),
    };
    let config = LabConfig {
        backend: match args.backend {
            BackendArg::Sim => BackendKind::Sim,
            BackendArg::Qemu => BackendKind::Qemu,
        },
        nodes: args.nodes,
        listen: listen_address(&args)?,
        faults,
        request_log: args.request_log.clone(),
        boot_delay: args.boot_delay,
        task_duration: args.task_duration,
        auth_failure_delay: Duration::from_secs(3),
        qemu: qemu_options,
        ..LabConfig::default()
    };
    let started = kiln_lab::start_with_listeners(config, published.into_iter().collect()).await;
    let lab = match started {
        Ok(lab) => lab,
        Err(e) => {
            if let Some(record) = &record {
                let _ = record::teardown(record);
            }
            return Err(e.into());
        }
    };
    write_credentials(&credentials, &lab.credentials())?;
    let backend = if record.is_some() { "qemu" } else { "sim" };
    println!(
        "kiln-lab ({backend}) serving {} nodes at {}",
        args.nodes, lab.endpoint
    );
    for published in &lab.published_endpoints {
        println!("published:   {published}");
    }
    if let Some(record) = &record {
        println!("namespace:   {}", record.namespace);
        println!("data dir:    {}", record.data_dir.display());
    }
    println!("fingerprint: {}", lab.fingerprint);
    println!("token id:    {}", lab.token_id);
    println!("credentials: {}", credentials.display());
    if let Some(seed) = lab.fault_seed {
        println!("faults seed: {seed}");
    }
    let waited = wait_for_signal().await;
    lab.shutdown().await;
    let _ = std::fs::remove_file(&credentials);
    if let Some(record) = &record {
        record::teardown(record)?;
    }
    waited
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // The message chain only: a backtrace helps nobody reading a CLI error.
            eprintln!("kiln-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            let credentials = match &args.credentials_out {
                Some(p) => p.clone(),
                None => default_credentials()?,
            };
            // Before the runtime exists: its threads must be created inside the namespace.
            let qemu = match args.backend {
                BackendArg::Qemu => Some(prepare_qemu(&args, &credentials)?),
                BackendArg::Sim => None,
            };
            runtime()?.block_on(serve(*args, credentials, qemu))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ServeTruenas(args) => {
            runtime()?.block_on(truenas::serve(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Env { credentials } => {
            let creds = read_credentials(credentials)?;
            for (key, value) in variables(&creds) {
                println!("export {key}={}", shell_quote(&value));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec {
            credentials,
            command,
        } => {
            let creds = read_credentials(credentials)?;
            let Some((program, args)) = command.split_first() else {
                bail!("no command given");
            };
            let mut child = match &creds.namespace {
                Some(namespace) => {
                    let mut c = std::process::Command::new("ip");
                    c.args(["netns", "exec", namespace]).arg(program);
                    c
                }
                None => std::process::Command::new(program),
            };
            let status = child
                .args(args)
                .envs(variables(&creds))
                .status()
                .with_context(|| format!("cannot run {program}"))?;
            Ok(ExitCode::from(
                status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
            ))
        }
        Command::Down { instance } => {
            let dir = data_dir(&instance)?;
            let report = record::down(&dir)?;
            if report.stopped_serve {
                println!("stopped the running kiln-lab serve");
            }
            for pid in &report.killed_qemu {
                println!("killed QEMU process {pid}");
            }
            if let Some(namespace) = &report.removed_namespace {
                println!("removed network namespace {namespace}");
            }
            println!("removed {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
