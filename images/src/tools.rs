//! The host tools the builder runs: found on PATH (and the sbin dirs),
//! with the Debian package to install when missing; and how a command's
//! failure is reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BuildError;

/// Every tool a build runs, with its Debian package.
pub const TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("sfdisk", "fdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("grub-mkimage", "grub-pc-bin"),
    ("qemu-img", "qemu-utils"),
];

/// grub's MBR boot code, from `grub-pc-bin`.
pub const GRUB_I386_PC: &str = "/usr/lib/grub/i386-pc";

pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

pub fn check_all() -> Result<(), BuildError> {
    for (tool, package) in TOOLS {
        if find(tool).is_none() {
            return Err(BuildError::MissingTool { tool, package });
        }
    }
    if !Path::new(GRUB_I386_PC).join("boot.img").is_file() {
        return Err(BuildError::MissingTool {
            tool: "grub boot.img",
            package: "grub-pc-bin",
        });
    }
    Ok(())
}

/// Whether this process runs as root (the owner of `/proc/self`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Runs `program args`, capturing its output; a failure names the step,
/// the command line and the last lines of its stderr (or stdout).
pub fn run(step: &'static str, program: &str, args: &[&str]) -> Result<(), BuildError> {
    let command_line = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let binary = find(program).unwrap_or_else(|| PathBuf::from(program));
    let output = Command::new(binary)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| BuildError::Command {
            step,
            command: command_line.clone(),
            status: format!("cannot start: {source}"),
            stderr: String::new(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    if text.trim().is_empty() {
        text = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    Err(BuildError::Command {
        step,
        command: command_line,
        status: output.status.to_string(),
        stderr: tail(&text, 20),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn a_failing_command_names_step_and_command() {
        let error = run("testing", "sh", &["-c", "echo boom >&2; exit 3"]);
        let text = error.map_err(|e| e.to_string()).err().unwrap_or_default();
        assert!(
            text.contains("testing: `sh -c echo boom >&2; exit 3` failed"),
            "{text}"
        );
        assert!(text.ends_with("boom"), "{text}");
    }
}
