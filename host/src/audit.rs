//! The audit log: one JSON line per mutation, appended to
//! `<state dir>/audit.jsonl`. Appends of a single `write` under `O_APPEND`
//! land whole, so concurrent runners never interleave inside a line.
//!
//! The log is opened through [`crate::safe_fs::open_append`] for every
//! line: never through a symlink (appends would land in its target), never
//! a FIFO (a write could block a run), only a regular file (mode 0600 when
//! created). A command that mutates calls [`AuditLog::open`] before it
//! locks or touches anything, so an unusable log stops it with exit 2
//! instead of letting it mutate unaudited.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::safe_fs::{self, SafeFsError};

/// Mode of a newly created audit log: what was done to which sandbox is
/// this user's business.
const AUDIT_MODE: u32 = 0o600;

/// The audit log cannot be written: the run must not mutate (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(
    "audit log {0}; runner does not mutate a sandbox it cannot audit (fix or remove that file)"
)]
pub struct AuditUnusable(#[source] pub SafeFsError);

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

    /// The log at `path`, checked usable now: its directory exists (made
    /// if missing) and `path` is, or can be created as, a regular file that
    /// is no symlink. What a command calls before it mutates anything.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditUnusable> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| {
                AuditUnusable(SafeFsError::Io {
                    path: parent.to_path_buf(),
                    op: "created",
                    source,
                })
            })?;
        }
        safe_fs::open_append(&path, AUDIT_MODE).map_err(AuditUnusable)?;
        Ok(Self::new(path))
    }

    /// [`AuditLog::open`] of [`AuditLog::default_path`].
    pub fn open_default() -> Result<Self, AuditUnusable> {
        Self::open(Self::default_path())
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
            .map_err(|source| SafeFsError::Io {
                path: self.path.clone(),
                op: "created",
                source,
            })
            .and_then(|()| safe_fs::open_append(&self.path, AUDIT_MODE))
            .and_then(|mut f| {
                f.write_all(&bytes).map_err(|source| SafeFsError::Io {
                    path: self.path.clone(),
                    op: "written",
                    source,
                })
            });
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), "could not write the audit log: {e}");
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

    #[test]
    fn a_symlinked_or_odd_audit_log_is_unusable_and_never_followed() {
        let dir = std::env::temp_dir().join(format!("runner-audit-odd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let path = dir.join("audit.jsonl");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = AuditLog::open(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "audit log {} is a symbolic link, not a regular file",
                path.display()
            )),
            "{err}"
        );
        // Even a log made without the check never writes through the link.
        AuditLog::new(&path).append(&AuditRecord {
            sandbox: "s",
            plugin: "p",
            link: "l",
            action: "a",
            detail: "d",
            result: "ok",
        });
        assert_eq!(std::fs::read(&target).unwrap(), b"");

        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(AuditLog::open(&path).is_err());
        std::fs::remove_dir(&path).unwrap();
        let log = AuditLog::open(&path).unwrap();
        assert!(std::fs::symlink_metadata(log.path()).unwrap().is_file());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
