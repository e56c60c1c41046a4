use std::path::PathBuf;

/// Why a golden image could not be built or found.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("unknown golden recipe `{0}` (known: debian-12)")]
    UnknownRecipe(String),
    #[error(
        "building a golden image needs root (debootstrap and mkfs keep file ownership); run it as root"
    )]
    NotRoot,
    #[error(
        "`{tool}` is missing: install the Debian package `{package}` (apt-get install {package})"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error("{step}: `{command}` failed ({status}){}", stderr_tail(.stderr))]
    Command {
        step: &'static str,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{step}: {message}")]
    Invalid { step: &'static str, message: String },
}

fn stderr_tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\n{stderr}")
    }
}

impl BuildError {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io { step, path, source }
    }
}
