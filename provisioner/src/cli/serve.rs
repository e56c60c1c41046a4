//! `kiln serve`: the collector. Prints where it listens and the certificate
//! fingerprint agents pin, then serves until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kiln::secrets::ClusterSecrets;
use kiln_collector::{
    Collector, CollectorConfig, CollectorError, CollectorIdentity, Retention, default_db_path,
};
use kiln_inventory::Inventory;
use kiln_secrets::Dirs;
use kiln_secrets::generated::COLLECTOR_TLS_ENTRY;
use serde_json::json;

use super::global::{Exit, GlobalArgs, OutputFormat};
use super::load;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. `0.0.0.0:9443` (reachable from the nodes).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Your own certificate (PEM, leaf first) instead of kiln's self-signed one.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `--cert`.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Reports kept per node.
    #[arg(long, default_value_t = Retention::default().per_node,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history: u32,
    /// Reports older than this are dropped (e.g. `7d`, `12h`).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention: Duration,
}

pub fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<Exit> {
    let runtime = load::runtime()?;
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => CollectorIdentity::load(cert, key)?,
        _ => {
            let Some(inventory) = load::inventory(global) else {
                eprintln!(
                    "kiln serve: the cluster's certificate is kept in its secrets store, which \
                     the inventory names: pass -i FILE (or your own --cert and --key)"
                );
                return Ok(Exit::Failure);
            };
            runtime.block_on(stored_identity(&inventory))?
        }
    };
    let mut config = CollectorConfig::new(default_db_path()?);
    config.retention = Retention {
        per_node: args.history,
        max_age: args.retention,
    };
    let collector = Collector::open(config)?;
    let tls = identity.server_config()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|reason| CollectorError::Listen {
                address: args.listen.to_string(),
                reason,
            })?;
        let url = format!("https://{}", listener.local_addr().unwrap_or(args.listen));
        let banner = match global.output {
            OutputFormat::Json => json!({
                "url": url,
                "fingerprint": identity.fingerprint.to_string(),
                "certificate": identity.source,
            })
            .to_string(),
            OutputFormat::Text => format!(
                "kiln collector listening on {url}\n\
                 certificate SHA-256 fingerprint: {}\n\
                 status page: {url}/   metrics: {url}/metrics   nodes: {url}/api/v1/nodes",
                identity.fingerprint
            ),
        };
        // A collector outlives whoever read its banner: a closed stdout is
        // no reason to stop serving.
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(stdout, "{banner}").and_then(|()| stdout.flush()) {
            tracing::debug!(%error, "kiln serve: stdout is closed");
        }
        drop(stdout);
        collector
            .serve(listener, tls, shutdown_signal())
            .await
            .context("the collector stopped")
    })?;
    Ok(Exit::Success)
}

/// The cluster's own certificate from its secrets store (made there on
/// first use, for the collector's host in `agent.collector`).
async fn stored_identity(inventory: &Inventory) -> anyhow::Result<CollectorIdentity> {
    let secrets = ClusterSecrets::open(inventory, &Dirs::from_env()?).await?;
    let tls = secrets.collector_tls(inventory).await?;
    Ok(CollectorIdentity::from_pem(
        &tls.cert_pem,
        &tls.key_pem,
        format!("the secrets store entry {COLLECTOR_TLS_ENTRY}"),
    )?)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    eprintln!("kiln: stopping the collector (finishing open requests)");
}
