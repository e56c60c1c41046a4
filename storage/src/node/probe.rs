//! `kiln storage check` on one node: the real data path from the node's own
//! kernel. Every byte is read back after a remount with the caches dropped,
//! so it came from TrueNAS, not from the node's memory. Whatever a probe
//! made on the node (a session, a mount, the CHAP secret's file) is removed
//! on every path, success or failure.

use kiln_ssh::{Privilege, Session, UploadFile, UploadSource, shell_line};
use secrecy::{ExposeSecret, SecretString};

pub use super::script::ProbeStep;
use super::script::{StepError, run_step};

/// Where probes mount and keep their scratch files on the node.
const WORK_DIR: &str = "/run/kiln-storage-check";
/// How long a logged-in LUN may take to show up as a block device.
const DEVICE_WAIT_TENTHS: u32 = 150;

/// An iSCSI target kiln made for the check, as the node reaches it.
#[derive(Debug, Clone)]
pub struct IscsiProbe {
    /// `address:port`, as TrueNAS's portal listens (an address, not a name:
    /// the device's by-path name carries it).
    pub portal: String,
    /// The target's full IQN. It must serve exactly one disk: the probe
    /// takes the target's one block device, whatever LUN number the target
    /// gives it (TrueNAS counts from 0, the lab's tgt from 1).
    pub target: String,
    pub chap: Option<Chap>,
}

/// CHAP credentials for a target; the secret never reaches a command line
/// that sudo or a shell history could log.
#[derive(Debug, Clone)]
pub struct Chap {
    pub user: String,
    pub secret: SecretString,
}

/// An NFS export kiln made for the check.
#[derive(Debug, Clone)]
pub struct NfsProbe {
    /// The server's address as the node reaches it.
    pub server: String,
    /// The exported path, e.g. `/mnt/tank/k8s/nfs/kiln-check-node1`.
    pub export: String,
    /// Mount options (`-o`), e.g. `vers=4.1`.
    pub options: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("node `{node}`: {what}: {source}")]
pub struct ProbeError {
    pub node: String,
    /// `iSCSI` or `NFS`.
    pub what: &'static str,
    #[source]
    pub source: StepError,
}

impl ProbeError {
    /// The step that failed, e.g. `login`.
    pub fn step(&self) -> &'static str {
        self.source.step()
    }
}

/// Discovery, (CHAP,) login, mkfs, mount, write, remount, read back,
/// unmount, logout — each a timed step.
pub async fn probe_iscsi(
    session: &Session,
    privilege: Privilege,
    node: &str,
    probe: &IscsiProbe,
) -> Result<Vec<ProbeStep>, ProbeError> {
    let fail = failure(node, "iSCSI");
    let commands = IscsiCommands::new(probe).map_err(fail)?;
    let mut steps = Vec::new();
    let outcome = iscsi_steps(session, privilege, probe, &commands, &mut steps).await;
    cleaned_up(session, privilege, &commands.cleanup, outcome, steps, fail).await
}

fn failure(node: &str, what: &'static str) -> impl Fn(StepError) -> ProbeError + Copy {
    move |source| ProbeError {
        node: node.to_owned(),
        what,
        source,
    }
}

/// Runs `cleanup` whatever the outcome (after success too: the probe's own
/// last steps undo what it made), then reports the first failure.
async fn cleaned_up(
    session: &Session,
    privilege: Privilege,
    cleanup: &str,
    outcome: Result<(), StepError>,
    steps: Vec<ProbeStep>,
    fail: impl Fn(StepError) -> ProbeError,
) -> Result<Vec<ProbeStep>, ProbeError> {
    let cleaned = run_step(session, privilege, "clean up", cleanup, &mut Vec::new()).await;
    outcome.map_err(&fail)?;
    cleaned.map_err(&fail)?;
    Ok(steps)
}

async fn iscsi_steps(
    session: &Session,
    privilege: Privilege,
    probe: &IscsiProbe,
    commands: &IscsiCommands,
    steps: &mut Vec<ProbeStep>,
) -> Result<(), StepError> {
    run_step(session, privilege, "prepare", &commands.prepare, steps).await?;
    let offered = run_step(session, privilege, "discovery", &commands.discovery, steps).await?;
    if !offers_target(&offered, &probe.target) {
        return Err(StepError::Failed {
            step: "discovery",
            detail: format!(
                "the portal {} does not offer {} to this node (it offered: {})",
                probe.portal,
                probe.target,
                listed_or_nothing(&offered)
            ),
        });
    }
    if let Some(chap) = &probe.chap {
        session
            .upload_all_as(
                privilege,
                &[UploadFile {
                    source: UploadSource::Bytes(chap.secret.expose_secret().as_bytes()),
                    path: &commands.chap_file,
                    mode: 0o600,
                }],
            )
            .await
            .map_err(|source| StepError::Ssh {
                step: "CHAP",
                source,
            })?;
        run_step(session, privilege, "CHAP", &commands.chap, steps).await?;
    }
    run_step(session, privilege, "login", &commands.login, steps).await?;
    let device = run_step(session, privilege, "device", &commands.device, steps).await?;
    let device = device.trim();
    let device_commands = FilesystemCommands::new(device, &commands.mount_dir)?;
    run_step(session, privilege, "mkfs", &device_commands.mkfs, steps).await?;
    check_round_trip(session, privilege, &device_commands, steps).await?;
    run_step(session, privilege, "logout", &commands.logout, steps).await?;
    Ok(())
}

/// Mount, write, unmount — NFS has no mkfs.
pub async fn probe_nfs(
    session: &Session,
    privilege: Privilege,
    node: &str,
    probe: &NfsProbe,
) -> Result<Vec<ProbeStep>, ProbeError> {
    let fail = failure(node, "NFS");
    let source = format!("{}:{}", probe.server, probe.export);
    let commands = FilesystemCommands::nfs(&source, &probe.options, &format!("{WORK_DIR}/nfs"))
        .map_err(fail)?;
    let mut steps = Vec::new();
    let outcome = check_round_trip(session, privilege, &commands, &mut steps).await;
    cleaned_up(session, privilege, &commands.cleanup, outcome, steps, fail).await
}

/// Writes a fresh token, remounts with the caches dropped, reads it back,
/// removes it and unmounts.
async fn check_round_trip(
    session: &Session,
    privilege: Privilege,
    commands: &FilesystemCommands,
    steps: &mut Vec<ProbeStep>,
) -> Result<(), StepError> {
    let token = uuid::Uuid::now_v7().to_string();
    run_step(session, privilege, "mount", &commands.mount, steps).await?;
    let write = format!(
        "printf %s {token} > {file} && sync {file} && {remount}",
        file = commands.file,
        remount = commands.remount
    );
    run_step(session, privilege, "write", &write, steps).await?;
    let read = run_step(
        session,
        privilege,
        "read back",
        &format!("cat {}", commands.file),
        steps,
    )
    .await?;
    if read != token {
        return Err(StepError::Failed {
            step: "read back",
            detail: format!(
                "wrote {token}, read back {:?}",
                read.chars().take(80).collect::<String>()
            ),
        });
    }
    run_step(session, privilege, "unmount", &commands.unmount, steps).await?;
    Ok(())
}

/// The shell lines of the iSCSI probe, quoted once here.
struct IscsiCommands {
    /// The work directory, root's alone (the CHAP secret passes through it).
    prepare: String,
    discovery: String,
    chap_file: String,
    chap: String,
    login: String,
    device: String,
    logout: String,
    mount_dir: String,
    cleanup: String,
}

impl IscsiCommands {
    fn new(probe: &IscsiProbe) -> Result<Self, StepError> {
        let line = |words: &[&str]| quoted("prepare", words);
        let node = |extra: &[&str]| {
            let mut words = vec![
                "iscsiadm",
                "-m",
                "node",
                "-T",
                &probe.target,
                "-p",
                &probe.portal,
            ];
            words.extend_from_slice(extra);
            line(&words)
        };
        let chap_file = format!("{WORK_DIR}/chap-secret");
        let update = |name: &str, value: &str| -> Result<String, StepError> {
            Ok(format!(
                "{} -v {value}",
                node(&["-o", "update", "-n", name])?
            ))
        };
        // iscsiadm takes the secret only on its command line, so it is read
        // from a root-only file by the shell sudo runs: sudo's log sees the
        // `$(cat …)`, not the secret.
        let chap = match &probe.chap {
            Some(chap) => [
                update("node.session.auth.authmethod", "CHAP")?,
                update("node.session.auth.username", &line(&[&chap.user])?)?,
                update(
                    "node.session.auth.password",
                    &format!("\"$(cat {chap_file})\""),
                )?,
                format!("rm -f {chap_file}"),
            ]
            .join(" && "),
            None => String::new(),
        };
        let prefix = format!(
            "/dev/disk/by-path/ip-{}-iscsi-{}",
            probe.portal, probe.target
        );
        let quoted_prefix = line(&[&prefix])?;
        // The glob stays outside the quotes; `set --` lists its matches.
        let device = format!(
            "udevadm settle --timeout=10; i=0; \
             while [ $i -lt {DEVICE_WAIT_TENTHS} ]; do set -- {quoted_prefix}-lun-*; [ -b \"$1\" ] && break; \
             sleep 0.1; i=$((i+1)); done; \
             if [ $# -ne 1 ] || [ ! -b \"$1\" ]; then echo \"expected one block device $*\" >&2; exit 1; fi; \
             readlink -e \"$1\""
        );
        let mount_dir = format!("{WORK_DIR}/iscsi");
        let logout = format!("{} && {}", node(&["--logout"])?, node(&["-o", "delete"])?);
        let cleanup = format!(
            "{{ mountpoint -q {mount_dir} && umount {mount_dir}; \
             {} >/dev/null 2>&1; {} >/dev/null 2>&1; rm -f {chap_file}; rmdir {mount_dir} 2>/dev/null; }}; true",
            node(&["--logout"])?,
            node(&["-o", "delete"])?,
        );
        Ok(Self {
            prepare: format!("mkdir -p -m 0700 {WORK_DIR} && chmod 0700 {WORK_DIR}"),
            discovery: line(&[
                "iscsiadm",
                "-m",
                "discovery",
                "-t",
                "sendtargets",
                "-p",
                &probe.portal,
            ])?,
            chap_file,
            chap,
            login: node(&["--login"])?,
            device,
            logout,
            mount_dir,
            cleanup,
        })
    }
}

/// Mounting one filesystem for the round trip.
struct FilesystemCommands {
    mkfs: String,
    mount: String,
    /// Unmounts, drops the caches, mounts again.
    remount: String,
    file: String,
    unmount: String,
    cleanup: String,
}

impl FilesystemCommands {
    fn new(device: &str, dir: &str) -> Result<Self, StepError> {
        let device = quoted("device", &[device])?;
        Self::with_mount(
            format!("mount {device} {dir}"),
            format!("blockdev --flushbufs {device} && "),
            dir,
            format!("mkfs.ext4 -q -F {device}"),
        )
    }

    fn nfs(source: &str, options: &[String], dir: &str) -> Result<Self, StepError> {
        let source = quoted("prepare", &[source])?;
        let options = if options.is_empty() {
            String::new()
        } else {
            format!("-o {} ", quoted("prepare", &[&options.join(",")])?)
        };
        Self::with_mount(
            format!("mount -t nfs {options}{source} {dir}"),
            String::new(),
            dir,
            String::new(),
        )
    }

    fn with_mount(
        mount: String,
        flush: String,
        dir: &str,
        mkfs: String,
    ) -> Result<Self, StepError> {
        let file = format!("{dir}/kiln-storage-check");
        Ok(Self {
            mkfs,
            remount: format!("umount {dir} && {flush}echo 3 > /proc/sys/vm/drop_caches && {mount}"),
            mount: format!("mkdir -p {dir} && {mount}"),
            unmount: format!("rm -f {file} && umount {dir} && rmdir {dir}"),
            cleanup: format!(
                "{{ mountpoint -q {dir} && {{ rm -f {file}; umount {dir} || umount -f -l {dir}; }}; rmdir {dir} 2>/dev/null; }}; true"
            ),
            file,
        })
    }
}

fn quoted(step: &'static str, words: &[&str]) -> Result<String, StepError> {
    shell_line(words.iter().copied()).map_err(|error| StepError::Failed {
        step,
        detail: error.to_string(),
    })
}

/// `sendtargets` lines are `address:port,tpgt iqn`.
fn offers_target(discovery: &str, target: &str) -> bool {
    discovery
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|offered| offered == target)
}

fn listed_or_nothing(discovery: &str) -> String {
    let offered: Vec<&str> = discovery
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    if offered.is_empty() {
        "nothing".to_owned()
    } else {
        offered.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(chap: Option<Chap>) -> IscsiProbe {
        IscsiProbe {
            portal: "10.0.0.5:3260".to_owned(),
            target: "iqn.2005-10.org.freenas.ctl:kiln-check-node1".to_owned(),
            chap,
        }
    }

    #[test]
    fn discovery_must_offer_the_exact_target() {
        let offered = "10.0.0.5:3260,1 iqn.2005-10.org.freenas.ctl:kiln-check-node1\n\
                       10.0.0.5:3260,1 iqn.2005-10.org.freenas.ctl:other\n";
        assert!(offers_target(
            offered,
            "iqn.2005-10.org.freenas.ctl:kiln-check-node1"
        ));
        assert!(!offers_target(
            offered,
            "iqn.2005-10.org.freenas.ctl:kiln-check"
        ));
        assert_eq!(listed_or_nothing(""), "nothing");
    }

    #[test]
    fn the_chap_secret_is_never_on_a_command_line() {
        let secret = "s3cret-canary-0123456789";
        let commands = IscsiCommands::new(&probe(Some(Chap {
            user: "kiln".to_owned(),
            secret: SecretString::from(secret),
        })))
        .expect("commands");
        for line in [
            &commands.discovery,
            &commands.chap,
            &commands.login,
            &commands.device,
            &commands.logout,
            &commands.cleanup,
        ] {
            assert!(!line.contains(secret), "{line}");
        }
        assert!(
            commands.chap.contains(
                "node.session.auth.password -v \"$(cat /run/kiln-storage-check/chap-secret)\""
            ),
            "{}",
            commands.chap
        );
        assert!(
            commands
                .cleanup
                .contains("rm -f /run/kiln-storage-check/chap-secret")
        );
    }

    #[test]
    fn the_device_is_the_targets_one_lun_by_path() {
        let commands = IscsiCommands::new(&probe(None)).expect("commands");
        assert!(commands.chap.is_empty());
        assert!(
            commands.device.contains(
                "set -- /dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2005-10.org.freenas.ctl:kiln-check-node1-lun-*;"
            ),
            "{}",
            commands.device
        );
    }

    #[test]
    fn the_device_script_takes_the_one_block_device_of_the_target() {
        // The script's own logic, run by sh over a scratch directory: one
        // block device (a symlink to /dev/null is not one) or none.
        let dir = tempfile::tempdir().expect("dir");
        let prefix = dir.path().join("ip-10.0.0.5:3260-iscsi-iqn.x:t");
        let commands = IscsiCommands::new(&IscsiProbe {
            portal: "10.0.0.5:3260".to_owned(),
            target: "iqn.x:t".to_owned(),
            chap: None,
        })
        .expect("commands");
        let script = commands
            .device
            .replace(
                "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.x:t",
                &prefix.display().to_string(),
            )
            .replace(&format!("-lt {DEVICE_WAIT_TENTHS}"), "-lt 2")
            .replace("udevadm settle --timeout=10; ", "");
        let run = || {
            std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("sh")
        };
        assert!(!run().status.success(), "no device at all must fail");
        let loop_device = std::path::Path::new("/dev/loop0");
        if loop_device.exists() {
            std::os::unix::fs::symlink(loop_device, format!("{}-lun-1", prefix.display()))
                .expect("link");
            let output = run();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "/dev/loop0");
        }
    }

    #[test]
    fn nfs_options_are_one_quoted_argument() {
        let commands = FilesystemCommands::nfs(
            "10.0.0.5:/mnt/tank/k8s/nfs/kiln-check-node1",
            &["vers=4.1".to_owned(), "nolock".to_owned()],
            "/run/kiln-storage-check/nfs",
        )
        .expect("commands");
        assert!(commands.mount.ends_with(
            "mount -t nfs -o 'vers=4.1,nolock' 10.0.0.5:/mnt/tank/k8s/nfs/kiln-check-node1 /run/kiln-storage-check/nfs"
        ), "{}", commands.mount);
        assert!(commands.mkfs.is_empty());
    }
}
