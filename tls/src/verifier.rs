use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::{Fingerprint, provider};

/// Accepts exactly the end-entity certificate whose SHA-256 matches the pin.
///
/// The server name is ignored because self-signed PVE/TrueNAS/Talos certs
/// name the node, not the address kiln dials. The handshake signatures are
/// still verified with the ring provider: without that, anyone holding the
/// (public) certificate could impersonate the server.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

/// The presented certificate is not the pinned one. It travels inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`, so its
/// text reaches the user through any client's error chain.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "certificate fingerprint mismatch: expected {expected} by the pin, server presented {presented}"
)]
pub struct PinMismatch {
    pub expected: Fingerprint,
    pub presented: Fingerprint,
}

/// rustls shows `CertificateError::Other` with `{:?}`, so Debug must read
/// as well as Display: it is what users see in the error chain.
impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl PinVerifier {
    pub fn new(pin: Fingerprint) -> Self {
        Self {
            pin,
            provider: provider(),
        }
    }

    pub fn pin(&self) -> Fingerprint {
        self.pin
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.pin,
                    presented,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
