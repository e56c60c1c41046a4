//! `service.*`: the services table (start-on-boot `enable`, `state`), started and stopped by
//! `service.control` (a job, 25.10+) or the older `service.start/stop/restart/reload`
//! (still public in 25.10, `removed_in v26.04`). Starting `iscsitarget` or `nfs` hands the
//! configuration to the data path; its failure is the start's failure.

use serde_json::{Value, json};

use super::State;
use crate::datapath::DataPath;
use crate::rpc::{ENOENT, RpcError};

#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub id: u64,
    pub name: &'static str,
    pub enable: bool,
    pub running: bool,
}

/// The services table of a fresh 25.10 install, with its ids: `alembic/initial.sql` made
/// ids up to 23 (most since deleted) and the table is AUTOINCREMENT, so `nvmet`, added by a
/// 25.10 migration after three other inserts, is 27.
pub(crate) fn initial() -> Vec<Service> {
    [
        (4, "cifs"),
        (6, "ftp"),
        (7, "iscsitarget"),
        (9, "nfs"),
        (10, "snmp"),
        (11, "ssh"),
        (14, "ups"),
        (27, "nvmet"),
    ]
    .into_iter()
    .map(|(id, name)| Service {
        id,
        name,
        enable: false,
        running: false,
    })
    .collect()
}

/// What to do to a service (`service.control`'s verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Start,
    Stop,
    Restart,
    Reload,
}

impl Verb {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "START" => Some(Self::Start),
            "STOP" => Some(Self::Stop),
            "RESTART" => Some(Self::Restart),
            "RELOAD" => Some(Self::Reload),
            _ => None,
        }
    }
}

impl Service {
    pub(crate) fn entry(&self) -> Value {
        json!({"id": self.id, "service": self.name, "enable": self.enable,
            "state": if self.running { "RUNNING" } else { "STOPPED" }, "pids": if self.running { vec![1000 + self.id] } else { vec![] }})
    }
}

impl State {
    fn service_index(&self, name: &str) -> Result<usize, RpcError> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| RpcError::call(ENOENT, format!("Service {name} not found.")))
    }

    pub(crate) fn service_rows(&self) -> Vec<Value> {
        self.services.iter().map(Service::entry).collect()
    }

    /// `service.update [id_or_name, {"enable": …}]` → the service's id.
    pub(crate) fn service_update(
        &mut self,
        id_or_name: &Value,
        data: &Value,
    ) -> Result<Value, RpcError> {
        let index = match id_or_name {
            Value::Number(n) => self
                .services
                .iter()
                .position(|s| Some(s.id) == n.as_u64())
                .ok_or_else(|| RpcError::call(ENOENT, format!("Service {n} not found.")))?,
            other => self.service_index(other.as_str().unwrap_or_default())?,
        };
        if let Some(enable) = data.get("enable").and_then(Value::as_bool) {
            self.services[index].enable = enable;
        }
        Ok(json!(self.services[index].id))
    }

    /// Runs a verb on a service. Returns whether the service ended as asked; a failed
    /// start is an error unless `silent` (then `false`, as the middleware answers).
    pub(crate) fn service_control(
        &mut self,
        verb: Verb,
        name: &str,
        silent: bool,
        data_path: &dyn DataPath,
    ) -> Result<Value, RpcError> {
        let index = self.service_index(name)?;
        let was_running = self.services[index].running;
        let running = match verb {
            Verb::Start | Verb::Restart => true,
            Verb::Stop => false,
            Verb::Reload => was_running,
        };
        self.services[index].running = running;
        let starting = (running && (verb != Verb::Reload)).then_some(name);
        match self.sync_data_path(data_path, starting) {
            Ok(()) => Ok(Value::Bool(true)),
            Err(e) => {
                self.services[index].running = was_running && verb == Verb::Restart;
                if silent {
                    Ok(Value::Bool(false))
                } else {
                    Err(e)
                }
            }
        }
    }
}
