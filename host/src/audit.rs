//! The audit log: one JSON line per mutation, appended to
//! `<state dir>/audit.jsonl`. Appends of a single `write` under `O_APPEND`
//! land whole, so concurrent runners never interleave inside a line.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, serde::Serialize)]
pub struct AuditRecord<'a> {
    pub sandbox: &'a str,
    pub plugin: &'a str,
    pub link: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
    pub result: &'a str,
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// `<state dir>/audit.jsonl`.
    pub fn default_path() -> PathBuf {
        crate::paths::state_dir().join("audit.jsonl")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record. A failure to audit is logged loudly but does not
    /// undo the mutation that already happened.
    pub fn append(&self, record: &AuditRecord<'_>) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let line = serde_json::json!({
            "time": crate::time::now_rfc3339(),
            "sandbox": record.sandbox,
            "plugin": record.plugin,
            "link": record.link,
            "action": record.action,
            "detail": record.detail,
            "result": record.result,
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            })
            .and_then(|mut f| f.write_all(&bytes));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "could not write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_as_json_lines() {
        let dir = std::env::temp_dir().join(format!("runner-audit-{}", std::process::id()));
        let log = AuditLog::new(dir.join("audit.jsonl"));
        for action in ["files.write", "spawn.detached"] {
            log.append(&AuditRecord {
                sandbox: "s",
                plugin: "p",
                link: "gateway",
                action,
                detail: "d",
                result: "ok",
            });
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["action"], "spawn.detached");
        assert_eq!(lines[0]["link"], "gateway");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
