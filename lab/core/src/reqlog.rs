//! The request log: one JSON line per request, secrets masked. Tests read it to assert
//! what a client sent (e.g. "zero mutating requests" for `kiln plan`). The emulator fills
//! in each entry; how its authentication is masked is its own business.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// Replaces every secret value.
pub const MASK: &str = "***";

/// One logged request (the JSON line's fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedRequest {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    pub method: String,
    /// The path as sent (for PVE with `/api2/json`).
    pub path: String,
    /// Query and body parameters; secrets are `***`.
    pub params: BTreeMap<String, String>,
    /// The authentication used, secret masked: `PVEAPIToken=kiln@pve!kiln=***`,
    /// `PVEAuthCookie=***`, or null.
    pub auth: Option<String>,
    /// The HTTP status; 0 when the connection was dropped without an answer (faults).
    pub status: u16,
    pub duration_ms: u64,
    /// True for every method but GET: what "read-only" checks count.
    pub mutating: bool,
}

/// Parameter names whose values never reach the log.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.contains("token") || key == "ticket"
}

/// Masks secret parameters.
pub fn mask_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret(k) {
                MASK.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// The PVE lab's request log.
pub type RequestLog = JsonLines<LoggedRequest>;

/// A lab's log of what it was asked: in memory always, one JSON line per
/// entry appended to a file when one is given (each emulator logs its own
/// entry type).
#[derive(Debug)]
pub struct JsonLines<T> {
    file: Option<Mutex<File>>,
    memory: Mutex<Vec<T>>,
}

impl<T> Default for JsonLines<T> {
    fn default() -> Self {
        Self {
            file: None,
            memory: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Serialize + Clone> JsonLines<T> {
    pub fn open(path: Option<&Path>) -> Result<Self, LabError> {
        let file = match path {
            Some(path) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| LabError::RequestLog {
                        path: path.to_path_buf(),
                        source,
                    })?,
            )),
            None => None,
        };
        Ok(Self {
            file,
            memory: Mutex::new(Vec::new()),
        })
    }

    pub fn record(&self, entry: T) {
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&entry)
            && let Ok(mut file) = file.lock()
            && let Err(e) = writeln!(file, "{line}")
        {
            tracing::warn!("request log write failed: {e}");
        }
        if let Ok(mut memory) = self.memory.lock() {
            memory.push(entry);
        }
    }

    pub fn entries(&self) -> Vec<T> {
        self.memory.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let params = BTreeMap::from([
            ("password".to_string(), "hunter2".to_string()),
            ("cipassword".to_string(), "x".to_string()),
            ("name".to_string(), "web1".to_string()),
        ]);
        let masked = mask_params(&params);
        assert_eq!(masked["password"], MASK);
        assert_eq!(masked["cipassword"], MASK);
        assert_eq!(masked["name"], "web1");
    }
}
