//! An inventory section's `tls` settings (Proxmox's, TrueNAS's) as the
//! trust its client verifies the server with: the pin, else the CA file,
//! else the system's roots.

use kiln_inventory::model::Tls;

/// The trust `tls` describes; the error is why its `fingerprint` (a value
/// or `env:VAR`) could not be read.
pub fn trust_of(tls: &Tls) -> Result<kiln_tls::Trust, String> {
    Ok(match (&tls.fingerprint, &tls.ca_file) {
        (Some(pin), _) => {
            let pin = pin.resolve()?;
            kiln_tls::Trust::Pin(kiln_tls::Fingerprint::from_bytes(pin.0))
        }
        (None, Some(ca_file)) => kiln_tls::Trust::CaFile(ca_file.clone()),
        (None, None) => kiln_tls::Trust::System,
    })
}
