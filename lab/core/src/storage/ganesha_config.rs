//! ganesha's configuration file: the core block (one listen address, NFSv4, optionally v3,
//! no grace period) and one EXPORT block per export, rewritten whole on every change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use super::StorageError;

/// One NFS export (TrueNAS's `sharing.nfs` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// ganesha's `Export_Id`: 1 or more (0 is the NFSv4 pseudo root).
    pub id: u16,
    /// The directory as the server sees it, e.g. `/mnt/tank/k8s/nfs/pvc-1` (see `PoolMount`).
    pub path: PathBuf,
    /// Where NFSv4 clients find it; TrueNAS uses the path itself.
    pub pseudo: PathBuf,
    /// Networks or addresses allowed (`10.77.0.0/24`, `10.77.0.21`); empty: everyone, as a
    /// TrueNAS share without `networks` and `hosts`.
    pub clients: Vec<String>,
    pub access: ExportAccess,
    pub squash: Squash,
}

impl Export {
    /// A read-write export whose pseudo path is its path, as TrueNAS makes them.
    pub fn truenas(
        id: u16,
        path: impl Into<PathBuf>,
        clients: Vec<String>,
        squash: Squash,
    ) -> Self {
        let path = path.into();
        Self {
            id,
            pseudo: path.clone(),
            path,
            clients,
            access: ExportAccess::ReadWrite,
            squash,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportAccess {
    ReadWrite,
    ReadOnly,
}

/// Whose identity writes land as: TrueNAS's `maproot_user: root` is `NoRootSquash`, no
/// mapping is `RootSquash`, `mapall_user` is `AllSquash` (to nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Squash {
    NoRootSquash,
    RootSquash,
    AllSquash,
}

/// What the core block says.
pub(super) struct Core<'a> {
    pub listen: IpAddr,
    pub nfs_v3: bool,
    pub recovery_dir: &'a Path,
}

pub(super) fn render(core: &Core<'_>, exports: &BTreeMap<u16, Export>) -> String {
    let protocols = if core.nfs_v3 { "3, 4" } else { "4" };
    let mut text = format!(
        "# Written by kiln-lab; rewritten whole on every export change.\n\
         NFS_CORE_PARAM {{\n\
         \x20   Bind_addr = {listen};\n\
         \x20   Protocols = {protocols};\n\
         \x20   Enable_NLM = false;\n\
         \x20   Enable_RQUOTA = false;\n\
         \x20   Enable_UDP = false;\n\
         }}\n\
         NFSv4 {{\n\
         \x20   # A fresh server has no clients to wait for: no 90 s grace period.\n\
         \x20   Graceless = true;\n\
         \x20   RecoveryRoot = \"{recovery}\";\n\
         }}\n",
        listen = core.listen,
        recovery = core.recovery_dir.display(),
    );
    for export in exports.values() {
        let access = match export.access {
            ExportAccess::ReadWrite => "RW",
            ExportAccess::ReadOnly => "RO",
        };
        let squash = match export.squash {
            Squash::NoRootSquash => "No_Root_Squash",
            Squash::RootSquash => "Root_Squash",
            Squash::AllSquash => "All_Squash",
        };
        let clients = if export.clients.is_empty() {
            "*".to_string()
        } else {
            export.clients.join(", ")
        };
        // Access_Type None at the export level: only the CLIENT block's networks get in.
        let _ = write!(
            text,
            "EXPORT {{\n\
             \x20   Export_Id = {id};\n\
             \x20   Path = \"{path}\";\n\
             \x20   Pseudo = \"{pseudo}\";\n\
             \x20   Protocols = {protocols};\n\
             \x20   Transports = TCP;\n\
             \x20   SecType = sys;\n\
             \x20   Access_Type = None;\n\
             \x20   Squash = {squash};\n\
             \x20   FSAL {{ Name = VFS; }}\n\
             \x20   CLIENT {{ Clients = {clients}; Access_Type = {access}; }}\n\
             }}\n",
            id = export.id,
            path = export.path.display(),
            pseudo = export.pseudo.display(),
        );
    }
    text
}

/// Refuses what would not parse, or would say something else than meant, in the config.
pub(super) fn check_export(export: &Export) -> Result<(), StorageError> {
    if export.id == 0 {
        return Err(StorageError::Invalid(
            "export id 0 is ganesha's NFSv4 pseudo root; use 1 or more".to_string(),
        ));
    }
    check_path("export path", &export.path)?;
    check_path("pseudo path", &export.pseudo)?;
    if export.pseudo == Path::new("/") {
        return Err(StorageError::Invalid(
            "pseudo path / is the NFSv4 root itself".to_string(),
        ));
    }
    for client in &export.clients {
        check_client(client)?;
    }
    Ok(())
}

/// Absolute, normal (no `.`/`..`), and nothing that would end a quoted config string.
pub(super) fn check_path(what: &str, path: &Path) -> Result<(), StorageError> {
    let text = path.to_str().unwrap_or_default();
    let normal = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !normal || text.is_empty() || text.chars().any(|c| c == '"' || c.is_control()) {
        return Err(StorageError::Invalid(format!(
            "{what} {}: must be an absolute, normal path without quotes",
            path.display()
        )));
    }
    Ok(())
}

/// An address or `address/prefix`.
fn check_client(client: &str) -> Result<(), StorageError> {
    let (address, prefix) = match client.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (client, None),
    };
    let valid = match address.parse::<IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
        }
        Err(_) => false,
    };
    if valid {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "export client {client:?}: not an address or network (10.77.0.0/24)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(id: u16, clients: &[&str]) -> Export {
        Export::truenas(
            id,
            format!("/mnt/tank/k8s/nfs/pvc-{id}"),
            clients.iter().map(|c| (*c).to_string()).collect(),
            Squash::NoRootSquash,
        )
    }

    #[test]
    fn an_export_block_allows_only_its_clients() {
        let exports = BTreeMap::from([(3, export(3, &["10.77.0.21", "10.77.1.0/24"]))]);
        let core = Core {
            listen: "10.77.0.1".parse().unwrap(),
            nfs_v3: false,
            recovery_dir: Path::new("/state/recovery"),
        };
        let text = render(&core, &exports);
        assert!(text.contains("Bind_addr = 10.77.0.1;"), "{text}");
        assert!(text.contains("Graceless = true;"), "{text}");
        assert!(text.contains("Export_Id = 3;"), "{text}");
        assert!(
            text.contains("Path = \"/mnt/tank/k8s/nfs/pvc-3\";"),
            "{text}"
        );
        assert!(
            text.contains("Pseudo = \"/mnt/tank/k8s/nfs/pvc-3\";"),
            "{text}"
        );
        assert!(text.contains("Squash = No_Root_Squash;"), "{text}");
        assert!(
            text.contains("CLIENT { Clients = 10.77.0.21, 10.77.1.0/24; Access_Type = RW; }"),
            "{text}"
        );
        assert!(text.contains("Access_Type = None;"), "{text}");
    }

    #[test]
    fn no_clients_means_everyone_and_v3_adds_the_protocol() {
        let exports = BTreeMap::from([(1, export(1, &[]))]);
        let core = Core {
            listen: "10.77.0.1".parse().unwrap(),
            nfs_v3: true,
            recovery_dir: Path::new("/r"),
        };
        let text = render(&core, &exports);
        assert!(text.contains("Clients = *;"), "{text}");
        assert!(text.contains("Protocols = 3, 4;"), "{text}");
    }

    #[test]
    fn malformed_exports_are_refused_before_reaching_ganesha() {
        assert!(check_export(&export(1, &["10.77.0.0/24"])).is_ok());
        assert!(check_export(&export(0, &[])).is_err());
        assert!(check_export(&export(1, &["10.77.0.0/33"])).is_err());
        assert!(check_export(&export(1, &["nas.example; Access_Type = RW"])).is_err());
        let mut quoted = export(1, &[]);
        quoted.path = PathBuf::from("/mnt/tank/a\"b");
        assert!(check_export(&quoted).is_err());
        let mut relative = export(1, &[]);
        relative.path = PathBuf::from("/mnt/tank/../etc");
        assert!(check_export(&relative).is_err());
    }
}
