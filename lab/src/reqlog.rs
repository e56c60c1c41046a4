//! The request log: one JSON line per request, secrets masked. Tests read it to assert
//! what a client sent (e.g. "zero mutating requests" for `kiln plan`).

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
    /// The path as sent (with `/api2/json`).
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
pub(crate) fn mask_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
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

/// Masks the secret part of an `Authorization` header or notes a ticket cookie.
pub(crate) fn mask_auth(authorization: Option<&str>, has_ticket_cookie: bool) -> Option<String> {
    if let Some(value) = authorization {
        if let Some(rest) = value
            .strip_prefix("PVEAPIToken=")
            .or_else(|| value.strip_prefix("PVEAPIToken "))
        {
            let id = rest.rsplit_once('=').map(|(id, _)| id).unwrap_or_default();
            return Some(format!("PVEAPIToken={id}={MASK}"));
        }
        if value.starts_with("PVEAuthCookie") {
            return Some(format!("PVEAuthCookie={MASK}"));
        }
        return Some(MASK.to_string());
    }
    has_ticket_cookie.then(|| format!("PVEAuthCookie={MASK}"))
}

#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    file: Option<Mutex<File>>,
    memory: Mutex<Vec<LoggedRequest>>,
}

impl RequestLog {
    pub(crate) fn open(path: Option<&Path>) -> Result<Self, LabError> {
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

    pub(crate) fn record(&self, entry: LoggedRequest) {
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

    pub(crate) fn entries(&self) -> Vec<LoggedRequest> {
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
        assert_eq!(
            mask_auth(Some("PVEAPIToken=kiln@pve!kiln=abc-def"), false).as_deref(),
            Some("PVEAPIToken=kiln@pve!kiln=***")
        );
    }
}
