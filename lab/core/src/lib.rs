//! kiln-lab-core: what every kiln-lab emulator shares and none of them owns — serving HTTPS
//! with a self-signed certificate, the request log, seeded fault draws, the lab's network
//! namespace and its run record, and running QEMU guests (command line, QMP, guest agent,
//! `qemu-img`, accelerator probe), and the real storage data path (tgt's iSCSI target and
//! nfs-ganesha, inside a network namespace).
//!
//! Nothing here knows an emulated system's API: an emulator crate (`kiln-lab-pve`, …)
//! builds its request pipeline on these pieces, and this crate depends on none of them.

mod error;
pub mod faults;
pub mod host;
pub mod https;
pub mod netns;
pub mod qemu;
pub mod record;
mod reqlog;
mod sshkeys;
pub mod storage;
mod tls;

pub use error::LabError;
pub use reqlog::{JsonLines, LoggedRequest, MASK, RequestLog, mask_params};
pub use sshkeys::{ed25519_public_key, is_public_key};
pub use tls::{ServerTls, fingerprint_of};
