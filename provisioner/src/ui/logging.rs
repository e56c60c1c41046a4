//! Logs go to stderr, as text or JSON lines; stdout stays for output.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::global::{GlobalArgs, LogFormat};

/// Noisy dependencies stay quiet unless asked for by name — and the
/// wire-level ones must: at trace, tungstenite logs every WebSocket frame's
/// payload (TrueNAS's login carries the API key) and russh its packets.
const DEPENDENCY_LEVELS: &str = "h2=warn,hyper=warn,hyper_util=warn,rustls=warn,reqwest=warn,\
                                 tungstenite=warn,tokio_tungstenite=warn,russh=warn,russh_sftp=warn";

pub fn init(global: &GlobalArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(format!("{},{DEPENDENCY_LEVELS}", global.log_level))
        .with_context(|| format!("invalid --log-level `{}`", global.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
