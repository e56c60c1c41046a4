//! The collector's TLS key and self-signed certificate. Agents pin its
//! SHA-256 fingerprint, so no CA is involved and the certificate may name
//! whatever address the nodes use.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{ClusterNames, get_or_create, stored};
use crate::error::SecretsError;
use crate::store::{Cas, Data, SecretStore};

pub const ENTRY: &str = "generated/collector/tls";
const WHAT: &str = "the collector's TLS certificate";

/// What `kiln serve` presents and what agents pin.
#[derive(Debug, Clone)]
pub struct CollectorTls {
    /// PKCS#8 PEM of the ECDSA P-256 key.
    pub key_pem: SecretString,
    pub cert_pem: String,
    /// The certificate's SHA-256, for the agents' pin.
    pub fingerprint: kiln_tls::Fingerprint,
    /// The names the certificate carries.
    pub names: Vec<String>,
}

/// The names the certificate must carry: the collector URL's host (what
/// agents dial), plus loopback for `kiln status` on the same machine.
pub(super) fn wanted_names(cluster_names: &ClusterNames) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(host) = cluster_names
        .collector_url
        .as_deref()
        .and_then(collector_host)
        && !names.contains(&host)
    {
        names.insert(0, host);
    }
    names
}

fn collector_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The collector's key and certificate, created on first use. If the
/// collector's address changed since, a new certificate is made for the new
/// name (agents must then be reinstalled to pin it), with a warning.
pub async fn collector_tls<S: SecretStore>(
    store: &S,
    cluster_names: &ClusterNames,
) -> Result<CollectorTls, SecretsError> {
    let names = wanted_names(cluster_names);
    let cluster = cluster_names.cluster.as_str();
    let mut data = get_or_create(store, ENTRY, || generate(cluster, &names)).await?;
    let stored_names = stored(&data, ENTRY, "names", WHAT)?
        .expose_secret()
        .to_owned();
    if stored_names != names.join(",") {
        tracing::warn!(
            old = %stored_names,
            new = %names.join(","),
            "the collector's address changed: issuing a new certificate; reinstall the agents so they pin it"
        );
        let version = store
            .read(ENTRY)
            .await?
            .map_or(0, |entry| entry.meta.version);
        data = generate(cluster, &names)?;
        store
            .write(ENTRY, super::clone_data(&data), Cas::Version(version))
            .await?;
    }
    parse(&data)
}

/// A fresh certificate for `cluster` carrying `names`, not stored anywhere
/// (tests and benchmarks; kiln itself uses [`collector_tls`]).
pub fn new_collector_tls(cluster: &str, names: &[String]) -> Result<CollectorTls, SecretsError> {
    parse(&generate(cluster, names)?)
}

pub(super) fn generate(cluster: &str, names: &[String]) -> Result<Data, SecretsError> {
    let failed = |error: rcgen::Error| SecretsError::Generate {
        what: WHAT,
        reason: error.to_string(),
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, format!("kiln collector {cluster}"));
    params.distinguished_name = subject;
    let cert = params.self_signed(&key).map_err(failed)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    Ok(Data::from([
        ("key_pem".to_owned(), SecretString::from(key_pem.as_str())),
        ("cert_pem".to_owned(), SecretString::from(cert.pem())),
        ("names".to_owned(), SecretString::from(names.join(","))),
    ]))
}

fn parse(data: &Data) -> Result<CollectorTls, SecretsError> {
    let key_pem = stored(data, ENTRY, "key_pem", WHAT)?.clone();
    let cert_pem = stored(data, ENTRY, "cert_pem", WHAT)?
        .expose_secret()
        .to_owned();
    let names = stored(data, ENTRY, "names", WHAT)?
        .expose_secret()
        .split(',')
        .map(str::to_owned)
        .collect();
    let der = pem_der(&cert_pem).ok_or_else(|| SecretsError::BadStoredValue {
        what: WHAT,
        name: ENTRY.to_owned(),
        reason: "the certificate is not PEM".to_owned(),
    })?;
    Ok(CollectorTls {
        key_pem,
        fingerprint: kiln_tls::Fingerprint::of_der(&der),
        cert_pem,
        names,
    })
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|der| der.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_names_the_collector_and_its_fingerprint_matches() {
        let names = vec!["10.20.0.5".to_owned(), "localhost".to_owned()];
        let tls = parse(&generate("home", &names).unwrap()).unwrap();
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key_pem.expose_secret().contains("PRIVATE KEY"));
        assert_eq!(tls.names, names);
        let der = pem_der(&tls.cert_pem).unwrap();
        assert_eq!(tls.fingerprint, kiln_tls::Fingerprint::of_der(&der));
    }

    #[test]
    fn hosts_come_out_of_collector_urls() {
        assert_eq!(
            collector_host("https://10.20.0.5:9443").as_deref(),
            Some("10.20.0.5")
        );
        assert_eq!(
            collector_host("https://kiln.lan/x").as_deref(),
            Some("kiln.lan")
        );
        assert_eq!(
            collector_host("https://[fd00::5]:9443").as_deref(),
            Some("fd00::5")
        );
    }
}
