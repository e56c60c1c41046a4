//! `kiln-lab serve-truenas`: the TrueNAS emulator on its own, for any client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use kiln_lab::truenas::{DataPath, TgtGanesha, TgtGaneshaOptions, TruenasConfig, start};

#[derive(Args)]
pub(crate) struct ServeTruenasArgs {
    /// Address to listen on (HTTPS/WSS): loopback, or an address of the network namespace
    /// this process runs in (`--namespace`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write {"endpoint","fingerprint","api_key"} here (mode 0600) once ready (default:
    /// $XDG_STATE_HOME/kiln-lab/truenas-credentials.json).
    #[arg(long)]
    credentials_out: Option<PathBuf>,
    /// Append one JSON line per call here ({"time","method","params","ok","error_code"};
    /// the key and CHAP secrets masked).
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Back zvols with sparse files and datasets with directories under this directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also serve plain ws:// here (TrueNAS's port 80 without the HTTPS redirect).
    #[arg(long)]
    plain_listen: Option<SocketAddr>,
    /// The network namespace (`ip netns` name) this process was started in (`ip netns exec
    /// NS kiln-lab serve-truenas …`), `--listen` being one of its addresses: then tgt and
    /// nfs-ganesha serve the zvols and shares there (the real data path; needs --data-dir).
    #[arg(long, requires = "data_dir")]
    namespace: Option<String>,
}

pub(crate) async fn serve(args: ServeTruenasArgs) -> anyhow::Result<()> {
    let credentials = match &args.credentials_out {
        Some(path) => path.clone(),
        None => crate::state_home()?
            .join("kiln-lab")
            .join("truenas-credentials.json"),
    };
    let data_path = match (&args.namespace, &args.data_dir) {
        (Some(namespace), Some(dir)) => Some(Arc::new(TgtGanesha::new(TgtGaneshaOptions {
            namespace: namespace.clone(),
            address: args.listen.ip(),
            data_dir: dir.clone(),
            state_dir: dir.join("servers"),
        })) as Arc<dyn DataPath>),
        _ => None,
    };
    let config = TruenasConfig {
        data_path,
        listen: args.listen,
        plain_listen: args.plain_listen,
        data_dir: args.data_dir.clone(),
        request_log: args.request_log.clone(),
        namespace: args.namespace.clone(),
        ..TruenasConfig::default()
    };
    let nas = start(config)
        .await
        .context("cannot start the TrueNAS emulator")?;
    crate::write_credentials(&credentials, &nas.credentials())?;
    println!("kiln-lab TrueNAS 25.10.5 emulator at {}", nas.endpoint);
    if let Some(plain) = &nas.plain_endpoint {
        println!("plain:       {plain}");
    }
    if let Some(namespace) = &args.namespace {
        println!("data path:   tgt + nfs-ganesha in namespace {namespace}");
    }
    println!("fingerprint: {}", nas.fingerprint);
    println!("credentials: {}", credentials.display());
    if let Some(log) = &args.request_log {
        println!("request log: {}", log.display());
    }
    let waited = crate::wait_for_signal().await;
    nas.shutdown().await;
    let _ = std::fs::remove_file(&credentials);
    waited
}
