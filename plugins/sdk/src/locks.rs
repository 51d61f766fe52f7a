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

use crate::process;
use crate::{FileKind, FileStat, ProcessInfo, RepairOutcome, Report, Sandbox};

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

/// What the `locks` link sees, before any decision.
#[derive(Debug, Clone)]
pub struct LocksView {
    /// Live gateway processes (matched by the plugin).
    pub gateways: Vec<ProcessInfo>,
    pub locks: Vec<LockFile>,
}

/// The verdict of the `locks` link (pure, so it is unit-tested).
pub fn assess(link: &str, view: &LocksView) -> Report {
    let stale: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Stale { .. }))
        .collect();
    let young: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Young { .. }))
        .collect();
    let odd: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::NotRegular { .. }))
        .collect();
    let live = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Live { .. }))
        .count();

    let mut report = if let Some(gw) = view.gateways.first() {
        Report::healthy(
            link,
            format!(
                "gateway {} is running; its locks are in use",
                process::describe(gw)
            ),
        )
    } else if !stale.is_empty() {
        let list: Vec<String> = stale
            .iter()
            .map(|l| match &l.state {
                LockState::Stale { why } => format!("{} ({why})", l.path),
                _ => unreachable!(),
            })
            .collect();
        Report::broken(
            link,
            format!(
                "{} stale lock(s) and no live gateway: {}",
                stale.len(),
                list.join("; ")
            ),
        )
        .repairable()
    } else if let Some(l) = young.first() {
        let age = match l.state {
            LockState::Young { age_secs } => age_secs,
            _ => 0,
        };
        Report::broken(
            link,
            format!(
                "unreadable lock {} is only {age} s old and no gateway is running; it blocks a start until it \
                 is {UNREADABLE_GRACE_SECS} s old (re-run then)",
                l.path
            ),
        )
    } else if let Some(l) = odd.first() {
        let kind = match l.state {
            LockState::NotRegular { kind } => kind,
            _ => FileKind::Other,
        };
        Report::broken(
            link,
            format!(
                "lock path {} is a {kind:?}, not a regular file; refusing to touch it (remove it by hand)",
                l.path
            ),
        )
    } else {
        Report::healthy(link, format!("no stale gateway lock ({live} live)"))
    };
    report = report
        .evidence("locks-found", view.locks.len())
        .evidence("live", live)
        .evidence("stale", stale.len());
    for l in &view.locks {
        let verdict = match &l.state {
            LockState::Live { why, .. } => format!("live: {why}"),
            LockState::Stale { why } => format!("stale: {why}"),
            LockState::Young { age_secs } => format!("unreadable, {age_secs} s old"),
            LockState::NotRegular { kind } => format!("{kind:?}, never touched"),
        };
        report = report.evidence(&format!("lock {}", l.path), verdict);
    }
    if let Some(gw) = view.gateways.first() {
        report = report
            .evidence("gateway-pid", gw.id.pid)
            .evidence("gateway-start-time", gw.id.start_time);
    }
    report
}

/// Observe processes and locks.
pub fn view(
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Result<LocksView, String> {
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let gateways = procs
        .iter()
        .filter(|p| !process::is_exited(p) && is_gateway(p))
        .cloned()
        .collect();
    let locks = inspect(sandbox, paths, &procs, is_gateway)?;
    Ok(LocksView { gateways, locks })
}

/// The `locks` link's probe.
pub fn probe(
    link: &str,
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Report {
    match view(sandbox, paths, is_gateway) {
        Ok(v) => assess(link, &v),
        Err(e) => Report::unknown(link, format!("cannot inspect gateway locks: {e}")),
    }
}

/// The `locks` link's repair: with no live gateway, remove every stale lock
/// by compare-and-delete. Live, young and non-regular locks are left alone.
pub fn repair(
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> RepairOutcome {
    let v = match view(sandbox, paths, is_gateway) {
        Ok(v) => v,
        Err(e) => return RepairOutcome::Failed(format!("cannot inspect gateway locks: {e}")),
    };
    if let Some(gw) = v.gateways.first() {
        return RepairOutcome::NotNeeded(format!(
            "gateway {} is running; its locks are not stale",
            process::describe(gw)
        ));
    }
    let stale: Vec<&LockFile> = v
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Stale { .. }))
        .collect();
    if stale.is_empty() {
        // Nothing removable: either all is well, or only young/non-regular
        // locks remain, which are never touched.
        let verdict = assess("locks", &v).build();
        return match verdict.health {
            crate::Health::Healthy => RepairOutcome::NotNeeded("no stale gateway lock".into()),
            _ => RepairOutcome::Refused(verdict.summary),
        };
    }
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    for l in stale {
        match sandbox.remove_if(&l.path, Some(&l.data)) {
            Ok(true) => removed.push(l.path.clone()),
            Ok(false) => changed.push(l.path.clone()),
            Err(e) => {
                return RepairOutcome::Failed(format!(
                    "removing stale lock {} failed: {e}{}",
                    l.path,
                    if removed.is_empty() {
                        String::new()
                    } else {
                        format!(" (already removed: {})", removed.join(", "))
                    }
                ));
            }
        }
    }
    if removed.is_empty() {
        return RepairOutcome::Failed(format!(
            "stale lock(s) {} changed or vanished before removal; nothing removed (re-probe)",
            changed.join(", ")
        ));
    }
    let mut msg = format!(
        "removed {} stale lock(s): {}",
        removed.len(),
        removed.join(", ")
    );
    if !changed.is_empty() {
        msg.push_str(&format!(
            "; left {} rewritten in the meantime",
            changed.join(", ")
        ));
    }
    RepairOutcome::Repaired(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::proc_;
    use crate::{Health, ProcessId};

    const OPENCLAW_LOCK: &str = "{\n  \"pid\": 42,\n  \"ownerId\": \"0b6c\",\n  \"cronOwnerProjection\": \"dynamic-default-v1\",\n  \"createdAt\": \"2026-09-20T10:00:00.000Z\",\n  \"configPath\": \"/sandbox/.openclaw/openclaw.json\",\n  \"stateDir\": \"/sandbox/.openclaw\",\n  \"port\": 18789,\n  \"startTime\": 5000\n}\n\t\t\t\t\t\t\t\t\t \t\t  \t \t\t \t\t\t  \n";
    const HERMES_LOCK: &str = r#"{"pid": 77, "kind": "hermes-gateway", "argv": ["/opt/hermes/bin/hermes", "gateway", "run"], "start_time": 9000}"#;

    fn gw(p: &ProcessInfo) -> bool {
        process::program_is(p, &["openclaw-gateway"])
    }

    fn st() -> FileStat {
        FileStat {
            kind: FileKind::Regular,
            mode: 0o600,
            uid: 998,
            gid: 998,
            size: 10,
            mtime: 0,
        }
    }

    fn lock(path: &str, state: LockState) -> LockFile {
        LockFile {
            path: path.into(),
            stat: st(),
            data: b"x".to_vec(),
            state,
        }
    }

    #[test]
    fn openclaw_lock_with_token_trailer_parses() {
        let o = parse_owner(OPENCLAW_LOCK.as_bytes()).unwrap();
        assert_eq!((o.pid, o.start_time), (42, Some(5000)));
    }

    #[test]
    fn hermes_lock_parses_kind_and_argv() {
        let o = parse_owner(HERMES_LOCK.as_bytes()).unwrap();
        assert_eq!((o.pid, o.start_time), (77, Some(9000)));
        assert_eq!(o.kind.as_deref(), Some("hermes-gateway"));
        assert_eq!(o.argv, vec!["/opt/hermes/bin/hermes", "gateway", "run"]);
    }

    #[test]
    fn quoted_numbers_in_a_json_lock_are_read() {
        let o = parse_owner(br#"{"pid": "42", "start_time": "+5000"}"#).unwrap();
        assert_eq!((o.pid, o.start_time), (42, Some(5000)));
    }

    #[test]
    fn plain_pid_files_parse() {
        assert_eq!(parse_owner(b"123 4567\n").unwrap().start_time, Some(4567));
        assert_eq!(parse_owner(b"123\n").unwrap().start_time, None);
        assert_eq!(parse_owner(b"123 abc"), None);
        assert_eq!(parse_owner(b"0"), None);
    }

    #[test]
    fn garbled_or_empty_lock_has_no_owner() {
        assert_eq!(parse_owner(b"{\n  \"pid\": "), None);
        assert_eq!(parse_owner(b""), None);
        assert_eq!(parse_owner(b"{\"pid\": -1}"), None);
        assert_eq!(parse_owner(b"{\"pid\": \"x\"}"), None);
        assert_eq!(parse_owner(b"{\"pid\": 4.5}"), None);
    }

    #[test]
    fn lock_with_live_identity_is_not_stale() {
        let procs = vec![proc_(42, 5000, 1, "S", &["openclaw-gateway"])];
        assert!(matches!(
            classify(OPENCLAW_LOCK.as_bytes(), 100, &procs, &gw),
            LockState::Live { pid: 42, .. }
        ));
    }

    #[test]
    fn lock_of_dead_pid_is_stale() {
        let procs = vec![proc_(7, 1, 1, "S", &["sh"])];
        let s = classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw);
        assert!(
            matches!(&s, LockState::Stale { why } if why.contains("gone")),
            "{s:?}"
        );
    }

    #[test]
    fn lock_of_zombie_owner_is_stale() {
        let procs = vec![proc_(42, 5000, 1, "Z", &[])];
        assert!(matches!(
            classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw),
            LockState::Stale { .. }
        ));
    }

    #[test]
    fn lock_whose_pid_was_reused_is_stale() {
        let procs = vec![proc_(42, 6000, 1, "S", &["openclaw-gateway"])];
        let s = classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw);
        assert!(
            matches!(&s, LockState::Stale { why } if why.contains("reused")),
            "{s:?}"
        );
    }

    #[test]
    fn lock_without_start_time_trusts_a_gateway_looking_owner_only() {
        let procs = vec![
            proc_(42, 1, 1, "S", &["openclaw-gateway"]),
            proc_(43, 1, 1, "S", &["bash"]),
        ];
        assert!(matches!(
            classify(b"{\"pid\": 42}", 0, &procs, &gw),
            LockState::Live { .. }
        ));
        assert!(matches!(
            classify(b"{\"pid\": 43}", 0, &procs, &gw),
            LockState::Stale { .. }
        ));
    }

    #[test]
    fn unreadable_lock_is_stale_only_after_thirty_seconds() {
        assert_eq!(
            classify(b"{\n  \"pid\": ", 12, &[], &gw),
            LockState::Young { age_secs: 12 }
        );
        assert_eq!(
            classify(b"", 30, &[], &gw),
            LockState::Young { age_secs: 30 }
        );
        assert!(matches!(
            classify(b"", 31, &[], &gw),
            LockState::Stale { .. }
        ));
    }

    #[test]
    fn stale_lock_with_no_gateway_is_broken_and_repairable() {
        let v = LocksView {
            gateways: vec![],
            locks: vec![lock(
                "/tmp/openclaw-998/gateway.state.lock",
                LockState::Stale {
                    why: "owner pid 42 is gone".into(),
                },
            )],
        };
        let r = assess("locks", &v).build();
        assert_eq!(r.health, Health::Broken);
        assert!(r.repairable);
        assert!(
            r.summary
                .contains("gateway.state.lock (owner pid 42 is gone)"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn stale_lock_next_to_a_live_gateway_is_healthy() {
        let v = LocksView {
            gateways: vec![proc_(50, 9, 1, "S", &["openclaw-gateway"])],
            locks: vec![lock(
                "/tmp/openclaw-998/gateway.state.lock",
                LockState::Stale { why: "gone".into() },
            )],
        };
        let r = assess("locks", &v).build();
        assert_eq!(r.health, Health::Healthy);
        assert!(
            r.evidence
                .iter()
                .any(|kv| kv.key == "gateway-pid" && kv.value == "50")
        );
    }

    #[test]
    fn young_unreadable_lock_is_broken_but_not_repairable() {
        let v = LocksView {
            gateways: vec![],
            locks: vec![lock(
                "/s/tmp/openclaw-998/gateway.state.lock",
                LockState::Young { age_secs: 5 },
            )],
        };
        let r = assess("locks", &v).build();
        assert_eq!(r.health, Health::Broken);
        assert!(!r.repairable);
        assert!(r.summary.contains("5 s old"));
    }

    #[test]
    fn symlinked_lock_is_never_touched() {
        let v = LocksView {
            gateways: vec![],
            locks: vec![lock(
                "/tmp/openclaw-0/gateway.state.lock",
                LockState::NotRegular {
                    kind: FileKind::Symlink,
                },
            )],
        };
        let r = assess("locks", &v).build();
        assert_eq!(r.health, Health::Broken);
        assert!(!r.repairable);
        assert!(r.summary.contains("Symlink"));
    }

    #[test]
    fn only_live_locks_is_healthy() {
        let v = LocksView {
            gateways: vec![],
            locks: vec![lock(
                "/x/gateway.state.lock",
                LockState::Live {
                    pid: 3,
                    why: "cli".into(),
                },
            )],
        };
        assert_eq!(assess("locks", &v).build().health, Health::Healthy);
        let _ = ProcessId {
            pid: 0,
            start_time: 0,
        };
    }
}
