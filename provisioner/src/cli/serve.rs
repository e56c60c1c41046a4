//! `kiln serve`: the collector. Prints where it listens and the certificate
//! fingerprint agents pin, then serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kiln::collector::{
    Collector, CollectorConfig, CollectorError, CollectorIdentity, Retention, collector_dir,
    default_db_path,
};
use kiln::secrets::Dirs;
use serde_json::json;

use super::{Exit, GlobalArgs, OutputFormat, load};

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
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => CollectorIdentity::load(cert, key)?,
        _ => {
            let dir = collector_dir(&Dirs::from_env().map_err(CollectorError::from)?);
            CollectorIdentity::load_or_create(&dir, &certificate_names(args.listen))?
        }
    };
    let mut config = CollectorConfig::new(default_db_path()?);
    config.retention = Retention {
        per_node: args.history,
        max_age: args.retention,
    };
    let collector = Collector::open(config)?;
    let tls = identity.server_config()?;
    load::runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|reason| CollectorError::Listen {
                address: args.listen.to_string(),
                reason,
            })?;
        let url = format!("https://{}", listener.local_addr().unwrap_or(args.listen));
        match global.output {
            OutputFormat::Json => println!(
                "{}",
                json!({
                    "url": url,
                    "fingerprint": identity.fingerprint.to_string(),
                    "certificate": identity.cert_path.display().to_string(),
                })
            ),
            OutputFormat::Text => {
                println!("kiln collector listening on {url}");
                println!("certificate SHA-256 fingerprint: {}", identity.fingerprint);
                println!(
                    "status page: {url}/   metrics: {url}/metrics   nodes: {url}/api/v1/nodes"
                );
            }
        }
        collector
            .serve(listener, tls, shutdown_signal())
            .await
            .context("the collector stopped")
    })?;
    Ok(Exit::Success)
}

/// The names kiln's own certificate carries. Agents pin its fingerprint, so
/// the names only matter to browsers and other clients that check them.
fn certificate_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = listen.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names
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
