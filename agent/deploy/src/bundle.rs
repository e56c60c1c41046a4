//! The local `kiln-agent` binary kiln deploys: where it is, its sha256, and
//! the glibc it needs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::glibc::{self, GlibcVersion};

/// The environment variable naming the agent binary to deploy.
pub const BINARY_ENV: &str = "KILN_AGENT_BINARY";
const BINARY_NAME: &str = "kiln-agent";

/// A `kiln-agent` binary, read and checked: its checksum is always the
/// checksum of its bytes.
#[derive(Clone)]
pub struct AgentBundle {
    path: PathBuf,
    binary: Vec<u8>,
    sha256: String,
    version: String,
    glibc: Option<GlibcVersion>,
}

impl std::fmt::Debug for AgentBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBundle")
            .field("path", &self.path)
            .field("bytes", &self.binary.len())
            .field("sha256", &self.sha256)
            .field("version", &self.version)
            .field("glibc", &self.glibc)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "the kiln-agent binary was not found: set {BINARY_ENV} to its path, or put it next to \
         kiln (looked for {looked})",
        looked = .looked.display()
    )]
    NotFound { looked: PathBuf },
    #[error("cannot tell where kiln runs from to find kiln-agent beside it: {source}")]
    CurrentExe {
        #[source]
        source: std::io::Error,
    },
    #[error("reading the kiln-agent binary {path}: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a kiln-agent binary kiln can deploy: {reason}", path = .path.display())]
    NotElf { path: PathBuf, reason: String },
    #[error(
        "{sidecar} gives sha256 {expected}, but {path} has {actual}: the binary is damaged or \
         not the one released",
        sidecar = .sidecar.display(),
        path = .path.display()
    )]
    Checksum {
        path: PathBuf,
        sidecar: PathBuf,
        expected: String,
        actual: String,
    },
}

impl AgentBundle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn binary(&self) -> &[u8] {
        &self.binary
    }

    /// Lower-case hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The version recorded on the host; the agent ships with kiln, so it
    /// is kiln's own.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The newest glibc the binary needs; `None` for a static binary.
    pub fn glibc(&self) -> Option<&GlibcVersion> {
        self.glibc.as_ref()
    }

    /// The binary named by `KILN_AGENT_BINARY`, else `kiln-agent` next to
    /// the running executable.
    pub fn locate() -> Result<Self, BundleError> {
        if let Some(path) = std::env::var_os(BINARY_ENV).filter(|value| !value.is_empty()) {
            return Self::load(Path::new(&path));
        }
        let exe = std::env::current_exe().map_err(|source| BundleError::CurrentExe { source })?;
        let beside = exe.with_file_name(BINARY_NAME);
        if !beside.is_file() {
            return Err(BundleError::NotFound { looked: beside });
        }
        Self::load(&beside)
    }

    /// Reads the binary at `path`. When a `PATH.sha256` file lies beside it
    /// (`sha256sum` format), the binary must match it.
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| BundleError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let binary = read(path)?;
        let sha256 = hex::encode(Sha256::digest(&binary));
        let mut sidecar = path.as_os_str().to_owned();
        sidecar.push(".sha256");
        let sidecar = PathBuf::from(sidecar);
        if sidecar.is_file() {
            let listed = String::from_utf8_lossy(&read(&sidecar)?).into_owned();
            let expected = listed
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if expected != sha256 {
                return Err(BundleError::Checksum {
                    path: path.to_owned(),
                    sidecar,
                    expected,
                    actual: sha256,
                });
            }
        }
        let glibc = glibc::needed_by(&binary).map_err(|reason| BundleError::NotElf {
            path: path.to_owned(),
            reason,
        })?;
        Ok(Self {
            path: path.to_owned(),
            binary,
            sha256,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            glibc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_read_with_its_checksum_and_glibc_needs() {
        let me = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("kiln-agent");
        std::fs::copy(&me, &copy).unwrap();
        let bundle = AgentBundle::load(&copy).unwrap();
        assert_eq!(
            bundle.sha256,
            hex::encode(Sha256::digest(std::fs::read(&me).unwrap()))
        );
        assert!(bundle.glibc.is_some());
        assert!(
            !format!("{bundle:?}").contains("binary:"),
            "no bytes in Debug"
        );
    }

    #[test]
    fn a_sidecar_checksum_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("kiln-agent");
        std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
        let sidecar = dir.path().join("kiln-agent.sha256");
        std::fs::write(&sidecar, format!("{}  kiln-agent\n", "0".repeat(64))).unwrap();
        let error = AgentBundle::load(&copy).unwrap_err().to_string();
        assert!(
            error.contains("kiln-agent.sha256 gives sha256 0000"),
            "{error}"
        );
        let right = AgentBundle::load(&std::env::current_exe().unwrap()).unwrap();
        std::fs::write(&sidecar, format!("{}  kiln-agent\n", right.sha256)).unwrap();
        assert!(AgentBundle::load(&copy).is_ok());
    }

    #[test]
    fn without_the_variable_it_looks_beside_the_running_binary() {
        if std::env::var_os(BINARY_ENV).is_some() {
            return;
        }
        let beside = std::env::current_exe()
            .unwrap()
            .with_file_name("kiln-agent");
        match AgentBundle::locate() {
            Ok(bundle) => assert_eq!(bundle.path(), beside),
            Err(error) => {
                let text = error.to_string();
                assert!(text.contains(BINARY_ENV), "{text}");
                assert!(text.contains(&beside.display().to_string()), "{text}");
            }
        }
    }

    #[test]
    fn a_script_or_a_missing_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("kiln-agent");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let error = AgentBundle::load(&script).unwrap_err().to_string();
        assert!(error.contains("is not a kiln-agent binary"), "{error}");
        let error = AgentBundle::load(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("reading the kiln-agent binary"), "{error}");
        assert!(error.contains("absent"), "{error}");
    }
}
