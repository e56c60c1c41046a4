//! `kiln-lab`: serve a Proxmox-compatible lab, or hand its credentials to a command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kiln_lab::{BackendKind, Credentials, FaultConfig, LabConfig};

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

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Sim,
    Qemu,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the PVE API until interrupted.
    Serve {
        #[arg(long, value_enum, default_value = "sim")]
        backend: BackendArg,
        /// Number of nodes (pve1..pveN).
        #[arg(long, default_value_t = 2)]
        nodes: u32,
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8006")]
        listen: std::net::SocketAddr,
        /// Seeded faults and latencies (YAML, see docs/lab.md).
        #[arg(long)]
        faults: Option<PathBuf>,
        /// Append one JSON line per request here.
        #[arg(long)]
        request_log: Option<PathBuf>,
        /// Write {"endpoint","fingerprint","token_id","token_secret"} here (mode 0600) once ready.
        #[arg(long)]
        credentials_out: Option<PathBuf>,
        /// Time from a VM's start until its guest agent answers (e.g. 2s, 500ms).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        boot_delay: Duration,
        /// How long tasks run unless the faults file says otherwise.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        task_duration: Duration,
    },
    /// Print the KILN_PROXMOX_* variables of a running lab as shell exports.
    Env {
        /// The credentials file (default: $XDG_STATE_HOME/kiln-lab/credentials.json).
        #[arg(long)]
        credentials: Option<PathBuf>,
    },
    /// Run a command with the KILN_PROXMOX_* variables of a running lab set.
    Exec {
        #[arg(long)]
        credentials: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn default_credentials() -> anyhow::Result<PathBuf> {
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home =
                std::env::var_os("HOME").context("neither XDG_STATE_HOME nor HOME is set")?;
            PathBuf::from(home).join(".local/state")
        }
    };
    Ok(state.join("kiln-lab").join("credentials.json"))
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

fn write_credentials(path: &Path, creds: &Credentials) -> anyhow::Result<()> {
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

#[allow(clippy::too_many_arguments)]
async fn serve(
    backend: BackendArg,
    nodes: u32,
    listen: std::net::SocketAddr,
    faults: Option<PathBuf>,
    request_log: Option<PathBuf>,
    credentials_out: Option<PathBuf>,
    boot_delay: Duration,
    task_duration: Duration,
) -> anyhow::Result<()> {
    let faults = faults.map(|p| FaultConfig::from_file(&p)).transpose()?;
    let config = LabConfig {
        backend: match backend {
            BackendArg::Sim => BackendKind::Sim,
            BackendArg::Qemu => BackendKind::Qemu,
        },
        nodes,
        listen,
        faults,
        request_log,
        boot_delay,
        task_duration,
        auth_failure_delay: Duration::from_secs(3),
        ..LabConfig::default()
    };
    let lab = kiln_lab::start(config).await?;
    let out = match credentials_out {
        Some(p) => p,
        None => default_credentials()?,
    };
    write_credentials(&out, &lab.credentials())?;
    println!("kiln-lab (sim) serving {} nodes at {}", nodes, lab.endpoint);
    println!("fingerprint: {}", lab.fingerprint);
    println!("token id:    {}", lab.token_id);
    println!("credentials: {}", out.display());
    if let Some(seed) = lab.fault_seed {
        println!("faults seed: {seed}");
    }
    wait_for_signal().await?;
    lab.shutdown().await;
    let _ = std::fs::remove_file(&out);
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
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

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            // The message chain only: a backtrace helps nobody reading a CLI error.
            eprintln!("kiln-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            backend,
            nodes,
            listen,
            faults,
            request_log,
            credentials_out,
            boot_delay,
            task_duration,
        } => {
            serve(
                backend,
                nodes,
                listen,
                faults,
                request_log,
                credentials_out,
                boot_delay,
                task_duration,
            )
            .await?;
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
            let status = std::process::Command::new(program)
                .args(args)
                .envs(variables(&creds))
                .status()
                .with_context(|| format!("cannot run {program}"))?;
            Ok(ExitCode::from(
                status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)),
            ))
        }
    }
}
