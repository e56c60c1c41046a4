//! A PVE task as plain data: its UPID (pve-common `UPID.pm`), who started it, its log
//! ending in `TASK OK` / `TASK WARNINGS: N` / `TASK ERROR: msg`, and its exit status. The
//! state keeps these records; `tasks` runs the work behind them and serves them.

use crate::api::auth::Caller;

/// A task's work: the log lines it wrote, or its error text.
pub(crate) type TaskResult = Result<Vec<String>, String>;

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) upid: String,
    pub(crate) node: String,
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) tokenid: Option<String>,
    pub(crate) pid: u32,
    pub(crate) pstart: u32,
    pub(crate) starttime: u64,
    pub(crate) log: Vec<String>,
    /// `OK`, `WARNINGS: N` or the error text, once the task has ended.
    pub(crate) exit: Option<String>,
    pub(crate) endtime: Option<u64>,
    /// Set by `DELETE /nodes/{node}/tasks/{upid}`: the work is interrupted before it runs.
    pub(crate) cancelled: bool,
}

impl Task {
    /// A running task of `kind` on object `id` (a VMID, a file name, or empty).
    pub(crate) fn new(
        node: &str,
        kind: &str,
        id: &str,
        caller: &Caller,
        pid: u32,
        starttime: u64,
    ) -> Self {
        let pstart = 0x0100_0000 + pid * 3;
        let upid = format!(
            "UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{}:",
            caller.upid_user()
        );
        Self {
            upid,
            node: node.to_string(),
            kind: kind.to_string(),
            id: id.to_string(),
            user: caller.user.clone(),
            tokenid: caller.token.clone(),
            pid,
            pstart,
            starttime,
            log: Vec::new(),
            exit: None,
            endtime: None,
            cancelled: false,
        }
    }

    /// Ends the task at `endtime` with the outcome of its work: log lines starting with
    /// `WARN:` make it end in warnings.
    pub(crate) fn finish(&mut self, result: TaskResult, endtime: u64) {
        self.endtime = Some(endtime);
        match result {
            Ok(lines) => {
                let warnings = lines.iter().filter(|l| l.starts_with("WARN:")).count();
                self.log.extend(lines);
                if warnings > 0 {
                    self.log.push(format!("TASK WARNINGS: {warnings}"));
                    self.exit = Some(format!("WARNINGS: {warnings}"));
                } else {
                    self.log.push("TASK OK".into());
                    self.exit = Some("OK".into());
                }
            }
            Err(message) => {
                self.log.push(message.clone());
                self.log.push(format!("TASK ERROR: {message}"));
                self.exit = Some(message);
            }
        }
    }

    /// Whether it ended in an error (neither `OK` nor warnings).
    pub(crate) fn failed(&self) -> bool {
        self.exit
            .as_deref()
            .is_some_and(|e| e != "OK" && !e.starts_with("WARNINGS"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            user: "kiln@pve".into(),
            token: Some("kiln".into()),
        }
    }

    #[test]
    fn upid_names_node_kind_id_and_token_user() {
        let task = Task::new("pve1", "qmclone", "9000", &caller(), 0x10, 0x6000_0000);
        assert_eq!(
            task.upid,
            "UPID:pve1:00000010:01000030:60000000:qmclone:9000:kiln@pve!kiln:"
        );
        assert!(task.exit.is_none());
    }

    #[test]
    fn warnings_and_errors_end_the_log() {
        let mut warned = Task::new("pve1", "download", "x.iso", &caller(), 1, 0);
        warned.finish(Ok(vec!["WARN: not fetched".into()]), 5);
        assert_eq!(warned.exit.as_deref(), Some("WARNINGS: 1"));
        assert_eq!(
            warned.log.last().map(String::as_str),
            Some("TASK WARNINGS: 1")
        );
        assert!(!warned.failed());
        let mut failed = Task::new("pve1", "qmstart", "101", &caller(), 2, 0);
        failed.finish(Err("VM 101 already running".into()), 5);
        assert_eq!(
            failed.log.last().map(String::as_str),
            Some("TASK ERROR: VM 101 already running")
        );
        assert!(failed.failed());
    }
}
