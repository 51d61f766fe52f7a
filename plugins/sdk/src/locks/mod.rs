//! Gateway lock and pid files: lenient parsing of the owner identity, the
//! stale/live rule, and the `locks` link (probe + compare-and-delete repair)
//! shared by every agent whose gateway leaves such files behind.
//!
//! The rule (OpenClaw's own stale-lock rule; Hermes' gateway.pid and
//! gateway.lock follow it too):
//! - the recorded pid is gone (or a zombie) → stale;
//! - it is alive and the file records a start time → live only if the start
//!   time is the pid's current one (otherwise the pid was reused → stale);
//! - it is alive and no start time is recorded → live only if the process
//!   looks like the gateway;
//! - the content is unreadable → stale only once the file is older than
//!   [`UNREADABLE_GRACE_SECS`] (a writer may be half-way through it).
//!
//! A lock is only ever removed with `files.remove-if` and the exact bytes
//! that were judged, so a lock rewritten in the meantime survives; symlinks
//! and other non-regular files are never touched.
mod link;
#[cfg(test)]
mod tests;

use crate::process;
use crate::{FileKind, FileStat, ProcessInfo, Sandbox};

pub use link::{LocksView, assess, probe, repair, view};

/// Unreadable content counts as held until the file is this old.
pub const UNREADABLE_GRACE_SECS: i64 = 30;

/// Largest lock file read; lock files are a few hundred bytes.
const MAX_LOCK_BYTES: u32 = 64 * 1024;

/// The owner a lock or pid file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub pid: u32,
    /// `/proc/<pid>/stat` field 22, when recorded (`startTime`, `start_time`).
    pub start_time: Option<u64>,
    /// `kind` (Hermes) or `role` (OpenClaw non-gateway owners).
    pub kind: Option<String>,
    pub argv: Vec<String>,
}

/// Parse a lock's owner leniently: JSON with `pid` and optional
/// `startTime`/`start_time`/`starttime` (numbers, or strings of digits),
/// followed by any whitespace trailer (OpenClaw's ownership-token line); or
/// plain text `<pid> [<starttime>]`. `None` when no positive pid can be read.
pub fn parse_owner(data: &[u8]) -> Option<LockOwner> {
    let text = String::from_utf8_lossy(data);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.starts_with('{') {
        let doc: serde_json::Value = serde_json::from_str(text).ok()?;
        let pid = doc
            .get("pid")
            .and_then(uint)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)?;
        let start_time = ["startTime", "start_time", "starttime"]
            .iter()
            .find_map(|k| doc.get(k).and_then(uint));
        let kind = ["kind", "role"]
            .iter()
            .find_map(|k| doc.get(k)?.as_str().map(str::to_string));
        let argv = doc
            .get("argv")
            .and_then(|a| a.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Some(LockOwner {
            pid,
            start_time,
            kind,
            argv,
        });
    }
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse::<u32>().ok().filter(|p| *p > 0)?;
    let start_time = match words.next() {
        Some(w) => Some(w.parse::<u64>().ok()?),
        None => None,
    };
    if words.next().is_some() {
        return None;
    }
    Some(LockOwner {
        pid,
        start_time,
        kind: None,
        argv: Vec::new(),
    })
}

/// A non-negative integer written as a JSON number or a string of digits
/// (some writers quote them).
fn uint(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => {
            let digits = s.strip_prefix('+').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        }
        _ => None,
    }
}

/// The verdict on one lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Its owner is alive: never touched.
    Live { pid: u32, why: String },
    /// Removable (when no gateway is running).
    Stale { why: String },
    /// Unreadable but too young to judge.
    Young { age_secs: i64 },
    /// Not a regular file (symlink, directory): never touched.
    NotRegular { kind: FileKind },
}

/// Judge a lock. `age_secs` = now − mtime; `looks_like_owner` recognises the
/// gateway for files that record no start time.
pub fn classify(
    data: &[u8],
    age_secs: i64,
    procs: &[ProcessInfo],
    looks_like_owner: &dyn Fn(&ProcessInfo) -> bool,
) -> LockState {
    let Some(owner) = parse_owner(data) else {
        return if age_secs > UNREADABLE_GRACE_SECS {
            LockState::Stale {
                why: format!("unreadable and {age_secs} s old"),
            }
        } else {
            LockState::Young { age_secs }
        };
    };
    let Some(p) = process::by_pid(procs, owner.pid) else {
        return LockState::Stale {
            why: format!("owner pid {} is gone", owner.pid),
        };
    };
    match owner.start_time {
        Some(t) if t == p.id.start_time => LockState::Live {
            pid: owner.pid,
            why: format!("owner pid {} is alive (start time {t})", owner.pid),
        },
        Some(t) => LockState::Stale {
            why: format!(
                "pid {} was reused (recorded start time {t}, now {}: {})",
                owner.pid,
                p.id.start_time,
                process::display(p)
            ),
        },
        None if looks_like_owner(p) => LockState::Live {
            pid: owner.pid,
            why: format!("owner {} looks like the gateway", process::describe(p)),
        },
        None => LockState::Stale {
            why: format!(
                "pid {} is not a gateway ({})",
                owner.pid,
                process::display(p)
            ),
        },
    }
}

/// One lock file found in the sandbox.
#[derive(Debug, Clone)]
pub struct LockFile {
    pub path: String,
    pub stat: FileStat,
    /// The bytes judged (empty for non-regular files).
    pub data: Vec<u8>,
    pub state: LockState,
}

/// Seconds since the Unix epoch on the host clock (the sandbox shares the
/// kernel clock).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Stat, read and judge each existing path (absent ones are skipped).
pub fn inspect(
    sandbox: &Sandbox,
    paths: &[String],
    procs: &[ProcessInfo],
    looks_like_owner: &dyn Fn(&ProcessInfo) -> bool,
) -> Result<Vec<LockFile>, String> {
    let now = now_secs();
    let mut out = Vec::new();
    for path in paths {
        let stat = match sandbox.stat(path) {
            Ok(Some(st)) => st,
            Ok(None) => continue,
            Err(e) => return Err(format!("cannot stat {path}: {e}")),
        };
        if stat.kind != FileKind::Regular {
            out.push(LockFile {
                path: path.clone(),
                state: LockState::NotRegular { kind: stat.kind },
                stat,
                data: Vec::new(),
            });
            continue;
        }
        let data = match sandbox.read(path, MAX_LOCK_BYTES) {
            Ok(d) => d,
            // Removed between stat and read: nothing to judge.
            Err(_) if matches!(sandbox.stat(path), Ok(None)) => continue,
            Err(e) => return Err(format!("cannot read {path}: {e}")),
        };
        let state = classify(&data, now - stat.mtime, procs, looks_like_owner);
        out.push(LockFile {
            path: path.clone(),
            stat,
            data,
            state,
        });
    }
    Ok(out)
}

/// Candidate lock files: in each of `parents`, the subdirectories accepted by
/// `dir_ok`, and in those the files accepted by `file_ok`. Missing
/// directories are skipped; at most 64 subdirectories per parent.
pub fn discover(
    sandbox: &Sandbox,
    parents: &[String],
    dir_ok: &dyn Fn(&str) -> bool,
    file_ok: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for parent in parents {
        let entries = match sandbox.list_dir(parent) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => return Err(format!("cannot list {parent}: {e}")),
        };
        let parent = parent.trim_end_matches('/');
        for dir in entries.iter().filter(|d| dir_ok(d)).take(64) {
            let dir_path = format!("{parent}/{dir}");
            // Never descend through a symlinked directory.
            match sandbox.stat(&dir_path) {
                Ok(Some(st)) if st.kind == FileKind::Directory => {}
                Ok(_) => continue,
                Err(e) => return Err(format!("cannot stat {dir_path}: {e}")),
            }
            let files = match sandbox.list_dir(&dir_path) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => return Err(format!("cannot list {dir_path}: {e}")),
            };
            out.extend(
                files
                    .iter()
                    .filter(|f| file_ok(f))
                    .take(128)
                    .map(|f| format!("{dir_path}/{f}")),
            );
        }
    }
    Ok(out)
}
