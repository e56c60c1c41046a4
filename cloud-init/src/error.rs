use thiserror::Error;

/// Why a node's cloud-init data cannot be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("node `{0}` is not in the inventory")]
    UnknownNode(String),
    #[error(
        "node `{0}` is bare metal: cloud-init data is for Proxmox VMs (kiln reaches bare metal over SSH)"
    )]
    BareMetal(String),
    #[error(
        "node `{0}` runs Talos, which takes a Talos machine config instead of #cloud-config user-data"
    )]
    Talos(String),
    #[error("node `{node}` has an IPv6 address but `network.ipv6` is not set")]
    Ipv6WithoutNetwork { node: String },
    #[error("invalid run-time input: {0}")]
    Input(#[from] InputError),
    #[error("cannot emit {document} as YAML: {message}")]
    Yaml {
        document: &'static str,
        message: String,
    },
}

/// A run-time input that kiln would otherwise write into a node verbatim.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InputError {
    #[error("invalid SSH public key `{shown}`: {reason}")]
    PublicKey { shown: String, reason: String },
    #[error("invalid SSH host key: {0}")]
    HostKey(String),
    #[error("invalid instance generation `{0}`: use 1-64 letters, digits, `.`, `_` or `-`")]
    Generation(String),
    #[error("write_files path `{0}` must be absolute and contain no `..`, newline or NUL")]
    WritePath(String),
    #[error("write_files `{path}`: permissions {mode:#o} exceed 0o7777")]
    Permissions { path: String, mode: u32 },
    #[error("write_files owner `{0}` is not `user` or `user:group` (lower-case account names)")]
    Owner(String),
    #[error("runcmd entry is empty: a command needs at least a program")]
    EmptyCommand,
    #[error("package name `{0}` is not a Debian package name")]
    Package(String),
}

/// Why the `cidata` ISO could not be built or written.
#[derive(Debug, Error)]
pub enum IsoError {
    #[error("cannot build the cidata ISO: {0}")]
    Build(String),
    #[error("cannot write the cidata ISO to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
