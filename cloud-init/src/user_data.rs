//! `user-data`: the `#cloud-config` document, as typed structs.
//!
//! Only keys whose meaning is the same in every cloud-init kiln targets
//! (Debian 12's 22.4 and later) are used; the test suite runs the real
//! `cloud-init schema` over every rendered document.

use std::fmt;

use kiln_inventory::Inventory;
use kiln_inventory::model::Node;
use serde::{Deserialize, Serialize};

use crate::error::RenderError;
use crate::input::{Command, RenderInput};

/// The header cloud-init needs to treat user-data as cloud-config.
pub const CLOUD_CONFIG_HEADER: &str = "#cloud-config\n";

/// The sudo rule of kiln's user: kiln runs unattended, so no password prompt.
const SUDO_NOPASSWD: &str = "ALL=(ALL) NOPASSWD:ALL";

/// The package kiln needs on images it did not build: Proxmox reports a
/// VM's address through the guest agent. kiln's golden images have it.
const GUEST_AGENT: &str = "qemu-guest-agent";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Let cloud-init write `/etc/hosts`, so the hostname and FQDN resolve
    /// locally before DNS knows the node.
    pub manage_etc_hosts: bool,
    pub users: Vec<User>,
    pub disable_root: bool,
    pub ssh_pwauth: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_keys: Option<HostKeys>,
    pub package_upgrade: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runcmd: Vec<Vec<String>>,
}

/// The one user kiln creates: it logs in with a key and has passwordless sudo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub gecos: String,
    pub shell: String,
    pub sudo: String,
    pub lock_passwd: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
}

/// `ssh_keys`: a host key kiln generated, so it can pin it before it connects.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeys {
    pub ed25519_private: String,
    pub ed25519_public: String,
}

impl fmt::Debug for HostKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKeys")
            .field("ed25519_private", &"[REDACTED]")
            .field("ed25519_public", &self.ed25519_public)
            .finish()
    }
}

/// One `write_files` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub content: String,
    /// Octal, as a string: cloud-init reads a YAML integer as decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defer: bool,
}

impl CloudConfig {
    /// The document for `node`, with what kiln supplies at run time.
    pub fn for_node(inventory: &Inventory, node: &Node, input: &RenderInput) -> Self {
        let mut packages: Vec<String> = Vec::new();
        let mut runcmd: Vec<Vec<String>> = Vec::new();
        if needs_guest_agent(inventory, node) {
            packages.push(GUEST_AGENT.to_owned());
            // Installing the package does not start it on every distribution
            // (Debian's unit is started by udev at boot, after the install).
            runcmd.push(vec![
                "systemctl".to_owned(),
                "start".to_owned(),
                GUEST_AGENT.to_owned(),
            ]);
        }
        for package in &input.packages {
            let name = package.as_str().to_owned();
            if !packages.contains(&name) {
                packages.push(name);
            }
        }
        runcmd.extend(input.runcmd.iter().map(|Command(argv)| argv.clone()));
        let user = inventory.ssh_user();
        Self {
            hostname: node.name.to_string(),
            fqdn: inventory.fqdn(node),
            manage_etc_hosts: true,
            users: vec![User {
                gecos: format!("kiln ({})", inventory.cluster.name),
                name: user.to_owned(),
                shell: "/bin/bash".to_owned(),
                sudo: SUDO_NOPASSWD.to_owned(),
                lock_passwd: true,
                ssh_authorized_keys: input
                    .authorized_keys
                    .iter()
                    .map(|key| key.as_str().to_owned())
                    .collect(),
            }],
            // Locking root out would lock kiln out when it logs in as root.
            disable_root: user != "root",
            ssh_pwauth: false,
            ssh_keys: input.host_key.as_ref().map(|pair| HostKeys {
                ed25519_private: pair.private_pem(),
                ed25519_public: pair.public().as_str().to_owned(),
            }),
            package_upgrade: input.package_upgrade,
            packages,
            write_files: input
                .write_files
                .iter()
                .map(|file| FileEntry {
                    path: file.path.clone(),
                    content: file.content.clone(),
                    permissions: file.permissions.map(|mode| format!("{mode:04o}")),
                    owner: file.owner.clone(),
                    defer: file.defer,
                })
                .collect(),
            runcmd,
        }
    }

    /// The user-data file: the `#cloud-config` header, then the YAML.
    pub fn to_user_data(&self) -> Result<String, RenderError> {
        let yaml = crate::yaml::emit(self, "user-data")?;
        Ok(format!("{CLOUD_CONFIG_HEADER}{yaml}"))
    }
}

/// Images kiln builds carry the guest agent; any other image (a
/// distribution's cloud image, or one the inventory does not describe)
/// gets it installed on first boot.
fn needs_guest_agent(inventory: &Inventory, node: &Node) -> bool {
    inventory
        .image_of(node)
        .is_none_or(|(_, image)| image.golden.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Generation, HostKeyPair, WriteFile};
    use crate::testing::{ED25519, HOST_PRIVATE, inventory};

    fn lab_input() -> RenderInput {
        RenderInput {
            authorized_keys: vec![ED25519.parse().unwrap()],
            generation: Generation::from(3),
            ..RenderInput::default()
        }
    }

    #[test]
    fn nodes_get_hostname_fqdn_and_a_key_only_sudo_user() {
        let inventory = inventory("lab.yaml");
        let node = inventory.node("lab1").unwrap();
        let config = CloudConfig::for_node(&inventory, node, &lab_input());
        assert_eq!(config.hostname, "lab1");
        assert_eq!(config.fqdn.as_deref(), Some("lab1.lab.kiln.internal"));
        let user = &config.users[0];
        assert_eq!(user.name, "kiln");
        assert_eq!(user.sudo, "ALL=(ALL) NOPASSWD:ALL");
        assert!(user.lock_passwd);
        assert_eq!(user.ssh_authorized_keys, [ED25519]);
        assert!(!config.ssh_pwauth);
        assert!(config.ssh_keys.is_none());
    }

    #[test]
    fn root_login_stays_open_only_when_kiln_logs_in_as_root() {
        let lab = inventory("lab.yaml");
        let node = lab.node("lab1").unwrap();
        assert!(CloudConfig::for_node(&lab, node, &lab_input()).disable_root);
        let mut as_root = lab.clone();
        if let Some(ssh) = as_root.ssh.as_mut() {
            ssh.user = "root".to_owned();
        }
        let config = CloudConfig::for_node(&as_root, node, &lab_input());
        assert_eq!(config.users[0].name, "root");
        assert!(!config.disable_root);
    }

    #[test]
    fn cloud_images_get_the_guest_agent_and_golden_images_do_not() {
        let lab = inventory("lab.yaml");
        let golden = CloudConfig::for_node(&lab, lab.node("lab1").unwrap(), &lab_input());
        assert!(golden.packages.is_empty() && golden.runcmd.is_empty());
        let tiny = inventory("minimal.yaml");
        let cloud = CloudConfig::for_node(&tiny, tiny.node("box").unwrap(), &lab_input());
        assert_eq!(cloud.packages, ["qemu-guest-agent"]);
        assert_eq!(cloud.runcmd[0], ["systemctl", "start", "qemu-guest-agent"]);
    }

    #[test]
    fn run_time_extras_follow_kiln_own_entries() {
        let tiny = inventory("minimal.yaml");
        let input = RenderInput {
            packages: vec!["qemu-guest-agent".parse().unwrap(), "jq".parse().unwrap()],
            write_files: vec![
                WriteFile::new("/etc/kiln/agent.toml", "interval = 5\n")
                    .unwrap()
                    .permissions(0o600)
                    .unwrap()
                    .owner("kiln:kiln")
                    .unwrap()
                    .deferred(),
            ],
            runcmd: vec![Command::new(["touch", "/run/kiln-ready"]).unwrap()],
            package_upgrade: true,
            ..lab_input()
        };
        let config = CloudConfig::for_node(&tiny, tiny.node("box").unwrap(), &input);
        assert_eq!(config.packages, ["qemu-guest-agent", "jq"]);
        assert_eq!(config.runcmd.len(), 2);
        assert_eq!(config.write_files[0].permissions.as_deref(), Some("0600"));
        assert!(config.package_upgrade);
    }

    #[test]
    fn user_data_starts_with_the_header_and_round_trips() {
        let lab = inventory("lab.yaml");
        let input = RenderInput {
            host_key: Some(HostKeyPair::ed25519(HOST_PRIVATE.into(), ED25519).unwrap()),
            ..lab_input()
        };
        let config = CloudConfig::for_node(&lab, lab.node("lab2").unwrap(), &input);
        let text = config.to_user_data().unwrap();
        assert!(text.starts_with("#cloud-config\n"));
        let back: CloudConfig = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert!(!format!("{config:?}").contains("BEGIN OPENSSH"));
    }
}
