//! The collector's TLS identity: kiln's own self-signed certificate (made on
//! first start in `<state>/collector/`, key 0600, reused after, so the
//! fingerprint agents pin stays put) or the user's certificate and key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_tls::Fingerprint;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::db::private_dir;
use super::error::CollectorError;

pub const CERT_FILE: &str = "collector.crt";
pub const KEY_FILE: &str = "collector.key";

/// A certificate chain, its key, and the leaf's fingerprint.
pub struct CollectorIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pub fingerprint: Fingerprint,
    pub cert_path: PathBuf,
}

impl CollectorIdentity {
    /// kiln's own identity in `dir`, created with the names `names` (DNS
    /// names or IP addresses) if it does not exist yet. Existing files are
    /// used as they are: the names do not matter to agents, which pin the
    /// fingerprint.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Self, CollectorError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {}
            (false, false) => create(dir, &cert_path, &key_path, names)?,
            (has_cert, _) => {
                let (present, missing) = if has_cert {
                    (&cert_path, &key_path)
                } else {
                    (&key_path, &cert_path)
                };
                return Err(CollectorError::Certificate(format!(
                    "{} exists but {} does not; restore it, or remove both to make a new \
                     certificate (and reinstall the agents, which pin the old one)",
                    present.display(),
                    missing.display()
                )));
            }
        }
        check_private(&key_path)?;
        Self::load(&cert_path, &key_path)
    }

    /// The user's own certificate (PEM, leaf first) and key (PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CollectorError> {
        let chain = CertificateDer::pem_file_iter(cert_path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|error| {
                CollectorError::Certificate(format!("{}: {error}", cert_path.display()))
            })?;
        let leaf = chain.first().ok_or_else(|| {
            CollectorError::Certificate(format!("{}: no certificate in it", cert_path.display()))
        })?;
        let fingerprint = Fingerprint::of_der(leaf);
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
            CollectorError::Certificate(format!(
                "{}: no usable private key: {error}",
                key_path.display()
            ))
        })?;
        Ok(Self {
            chain,
            key,
            fingerprint,
            cert_path: cert_path.to_owned(),
        })
    }

    /// The fingerprint of kiln's own certificate in `dir`, if it has one
    /// (what `kiln status` pins when the collector runs on this machine).
    pub fn existing_fingerprint(dir: &Path) -> Result<Option<Fingerprint>, CollectorError> {
        let cert_path = dir.join(CERT_FILE);
        if !cert_path.exists() {
            return Ok(None);
        }
        let leaf = CertificateDer::from_pem_file(&cert_path).map_err(|error| {
            CollectorError::Certificate(format!("{}: {error}", cert_path.display()))
        })?;
        Ok(Some(Fingerprint::of_der(&leaf)))
    }

    /// A rustls server config (ring, HTTP/1.1) presenting this identity.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CollectorError> {
        let failed = |error: rustls::Error| {
            CollectorError::Certificate(format!("{}: {error}", self.cert_path.display()))
        };
        let mut config = rustls::ServerConfig::builder_with_provider(kiln_tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(failed)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(failed)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl std::fmt::Debug for CollectorIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CollectorIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn create(
    dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    names: &[String],
) -> Result<(), CollectorError> {
    let failed = |error: rcgen::Error| CollectorError::Certificate(error.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "kiln collector");
    params.distinguished_name = subject;
    // Agents pin the fingerprint, so the certificate outlives any sane rotation.
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    let cert = params.self_signed(&key).map_err(failed)?;
    private_dir(dir)?;
    write_new(
        key_path,
        Zeroizing::new(key.serialize_pem()).as_bytes(),
        0o600,
    )?;
    write_new(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(certificate = %cert_path.display(), "made the collector's self-signed certificate");
    Ok(())
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CollectorError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .map_err(|source| CollectorError::io("create", path, source))
}

fn check_private(key_path: &Path) -> Result<(), CollectorError> {
    let mode = std::fs::metadata(key_path)
        .map_err(|source| CollectorError::io("inspect", key_path, source))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(CollectorError::Certificate(format!(
            "{} is readable by others (mode {mode:04o}); run `chmod 600 {}`",
            key_path.display(),
            key_path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let collector = dir.path().join("collector");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = CollectorIdentity::load_or_create(&collector, &names).unwrap();
        let again = CollectorIdentity::load_or_create(&collector, &names).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        let mode = std::fs::metadata(collector.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            CollectorIdentity::existing_fingerprint(&collector).unwrap(),
            Some(first.fingerprint)
        );
        first.server_config().unwrap();
    }

    #[test]
    fn a_missing_half_or_an_open_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        CollectorIdentity::load_or_create(dir.path(), &names).unwrap();
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = CollectorIdentity::load_or_create(dir.path(), &names)
            .unwrap_err()
            .to_string();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::remove_file(&key).unwrap();
        let error = CollectorIdentity::load_or_create(dir.path(), &names)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(KEY_FILE) && error.contains("does not"),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let error = CollectorIdentity::load(&cert, &dir.path().join("k.pem"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("c.pem"), "{error}");
    }
}
