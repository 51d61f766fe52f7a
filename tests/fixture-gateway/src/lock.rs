//! The OpenClaw 2026.9 state lock: `<state>/tmp/openclaw-<uid>/gateway.state.lock`.
//!
//! Format and liveness rule are OpenClaw 2026.9's (docs/openclaw-lease.md) so that whatever `runner` learns about
//! locks against this fixture holds against the real gateway: JSON with `pid` and
//! `startTime`, an ownership-token trailer of tabs and spaces, and a garbled lock that
//! blocks start until it is 30 s old.

use crate::json;
use crate::procfs::ProcView;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub const LOCK_NAME: &str = "gateway.state.lock";

/// A lock that cannot be read counts as held until it is this old: a writer may be
/// half-way through creating it.
pub const GARBLED_GRACE: Duration = Duration::from_secs(30);

/// OpenClaw retries acquisition every 100 ms.
const RETRY_EVERY: Duration = Duration::from_millis(100);

pub fn lock_path(state_dir: &Path, uid: u32) -> PathBuf {
    state_dir
        .join("tmp")
        .join(format!("openclaw-{uid}"))
        .join(LOCK_NAME)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockContent {
    /// Empty, truncated, not JSON, or without a usable pid.
    Garbled,
    Owner {
        pid: u32,
        start_time: Option<u64>,
    },
}

pub fn parse(text: &str) -> LockContent {
    let Ok(v) = json::parse(text) else {
        return LockContent::Garbled;
    };
    let pid = v
        .pointer("pid")
        .and_then(json::Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0);
    match pid {
        Some(pid) => LockContent::Owner {
            pid,
            start_time: v.pointer("startTime").and_then(json::Value::as_u64),
        },
        None => LockContent::Garbled,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Live(&'static str),
    Stale(&'static str),
}

/// The liveness rule, separated from the filesystem so it can be tested exhaustively.
/// `age` is now minus the lock's mtime; `probe` looks the recorded pid up.
pub fn judge(content: LockContent, age: Duration, probe: impl FnOnce(u32) -> ProcView) -> Verdict {
    match content {
        LockContent::Garbled if age > GARBLED_GRACE => {
            Verdict::Stale("unreadable and older than 30s")
        }
        LockContent::Garbled => Verdict::Live("unreadable and younger than 30s"),
        LockContent::Owner { pid, start_time } => {
            let p = probe(pid);
            match (p.alive, start_time) {
                (false, _) => Verdict::Stale("owner pid is dead"),
                (true, Some(recorded)) if p.start_time == Some(recorded) => {
                    Verdict::Live("owner pid alive with matching start time")
                }
                (true, Some(_)) => Verdict::Stale("owner pid was recycled (start time differs)"),
                (true, None) if p.looks_like_gateway => {
                    Verdict::Live("owner pid alive and looks like a gateway")
                }
                (true, None) => Verdict::Stale("owner pid alive but not a gateway"),
            }
        }
    }
}

pub struct LockRecord<'a> {
    pub pid: u32,
    pub start_time: u64,
    pub owner_id: &'a str,
    pub created_at: &'a str,
    pub config_path: &'a str,
    pub state_dir: &'a str,
    pub port: u16,
}

/// Pretty JSON followed by OpenClaw's ownership-token line (8 tabs, then 16 random
/// bytes spelled as tab/space bits), which JSON parsers treat as whitespace.
pub fn render(r: &LockRecord<'_>, token: [u8; 16]) -> String {
    let mut trailer = "\t".repeat(8);
    for byte in token {
        for bit in (0..8).rev() {
            trailer.push(if byte >> bit & 1 == 1 { '\t' } else { ' ' });
        }
    }
    format!(
        "{{\n  \"pid\": {},\n  \"ownerId\": {},\n  \"cronOwnerProjection\": \"dynamic-default-v1\",\n  \
         \"createdAt\": {},\n  \"configPath\": {},\n  \"stateDir\": {},\n  \"port\": {},\n  \
         \"startTime\": {}\n}}\n{trailer}\n",
        r.pid,
        json::quote(r.owner_id),
        json::quote(r.created_at),
        json::quote(r.config_path),
        json::quote(r.state_dir),
        r.port,
        r.start_time,
    )
}

#[derive(Debug)]
pub enum AcquireError {
    /// Still held when the budget ran out (OpenClaw exits 1 with this).
    Timeout {
        waited: Duration,
        last: Verdict,
    },
    /// Symlink, directory or other non-regular file: never removed, never followed.
    NotRegular(PathBuf),
    Io(std::io::Error),
    Interrupted,
}

/// Creates the lock exclusively, reclaiming a stale one silently (as OpenClaw does after
/// a kill -9). Returns how many stale locks were reclaimed.
pub fn acquire(
    path: &Path,
    content: &str,
    budget: Duration,
    probe: &dyn Fn(u32) -> ProcView,
    interrupted: &dyn Fn() -> bool,
) -> Result<usize, AcquireError> {
    if let Some(dir) = path.parent() {
        // Private like OpenClaw's lock dir: other users must not plant locks in it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(AcquireError::Io)?;
    }
    let started = Instant::now();
    let mut reclaimed = 0;
    loop {
        if interrupted() {
            return Err(AcquireError::Interrupted);
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                f.write_all(content.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(AcquireError::Io)?;
                return Ok(reclaimed);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(AcquireError::Io(e)),
        }
        let verdict = match inspect(path) {
            Ok(Some((content, age))) => judge(content, age, probe),
            // Vanished between create and read: just retry.
            Ok(None) => continue,
            Err(e) => return Err(e),
        };
        match verdict {
            Verdict::Stale(_) => {
                match fs::remove_file(path) {
                    Ok(()) => reclaimed += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(AcquireError::Io(e)),
                }
                continue;
            }
            Verdict::Live(_) if started.elapsed() >= budget => {
                return Err(AcquireError::Timeout {
                    waited: started.elapsed(),
                    last: verdict,
                });
            }
            Verdict::Live(_) => std::thread::sleep(RETRY_EVERY),
        }
    }
}

/// Reads an existing lock without following symlinks. `Ok(None)` = it disappeared.
fn inspect(path: &Path) -> Result<Option<(LockContent, Duration)>, AcquireError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AcquireError::Io(e)),
    };
    if !meta.file_type().is_file() {
        return Err(AcquireError::NotRegular(path.to_path_buf()));
    }
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    let mut text = String::new();
    match fs::File::open(path) {
        Ok(mut f) => {
            // Invalid UTF-8 is just another kind of garbage.
            if f.read_to_string(&mut text).is_err() {
                text.clear();
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AcquireError::Io(e)),
    }
    Ok(Some((parse(&text), age)))
}

/// Removes the lock on a clean exit, but only if it is still ours.
pub fn release(path: &Path, own_pid: u32, own_start: u64) {
    let ours = fs::read_to_string(path).map(|t| parse(&t)).ok()
        == Some(LockContent::Owner {
            pid: own_pid,
            start_time: Some(own_start),
        });
    if ours {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Duration = Duration::from_secs(1);
    const OLD: Duration = Duration::from_secs(31);

    fn alive(start: Option<u64>, gateway: bool) -> impl FnOnce(u32) -> ProcView {
        move |_| ProcView {
            alive: true,
            start_time: start,
            looks_like_gateway: gateway,
        }
    }

    fn dead() -> impl FnOnce(u32) -> ProcView {
        |_| ProcView::default()
    }

    fn owner(pid: u32, start_time: Option<u64>) -> LockContent {
        LockContent::Owner { pid, start_time }
    }

    #[test]
    fn garbled_lock_blocks_only_while_young() {
        assert!(matches!(
            judge(LockContent::Garbled, FRESH, dead()),
            Verdict::Live(_)
        ));
        assert!(matches!(
            judge(LockContent::Garbled, OLD, dead()),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn dead_owner_is_stale_regardless_of_age() {
        assert!(matches!(
            judge(owner(7, Some(5)), FRESH, dead()),
            Verdict::Stale(_)
        ));
        assert!(matches!(
            judge(owner(7, None), FRESH, dead()),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn live_owner_needs_matching_start_time() {
        let v = judge(owner(7, Some(5)), OLD, alive(Some(5), false));
        assert!(matches!(v, Verdict::Live(_)));
        let v = judge(owner(7, Some(5)), FRESH, alive(Some(6), true));
        assert_eq!(
            v,
            Verdict::Stale("owner pid was recycled (start time differs)")
        );
    }

    #[test]
    fn without_start_time_the_cmdline_decides() {
        assert!(matches!(
            judge(owner(7, None), FRESH, alive(Some(1), true)),
            Verdict::Live(_)
        ));
        assert!(matches!(
            judge(owner(7, None), FRESH, alive(Some(1), false)),
            Verdict::Stale(_)
        ));
    }

    #[test]
    fn parse_recognises_owner_and_garbage() {
        assert_eq!(
            parse("{\"pid\": 12, \"startTime\": 99}"),
            owner(12, Some(99))
        );
        assert_eq!(parse("{\"pid\": 12}"), owner(12, None));
        assert_eq!(parse("{\"pid\": 0}"), LockContent::Garbled);
        assert_eq!(parse("{\"pid\": \"12\"}"), LockContent::Garbled);
        assert_eq!(parse("{\"pid\": 12"), LockContent::Garbled);
        assert_eq!(parse(""), LockContent::Garbled);
    }

    #[test]
    fn rendered_lock_parses_back_with_its_trailer() {
        let rec = LockRecord {
            pid: 321,
            start_time: 4567,
            owner_id: "abc",
            created_at: "2026-01-01T00:00:00.000Z",
            config_path: "/sandbox/.openclaw/openclaw.json",
            state_dir: "/sandbox/.openclaw",
            port: 18789,
        };
        let text = render(&rec, [0xA5; 16]);
        let trailer = text.trim_end_matches('\n').rsplit('\n').next().unwrap();
        assert_eq!(trailer.len(), 8 + 128);
        assert!(trailer.chars().all(|c| c == '\t' || c == ' '));
        assert_eq!(parse(&text), owner(321, Some(4567)));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fixture-lock-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn acquire_reclaims_dead_owner_and_times_out_on_live_one() {
        let dir = scratch("acq");
        let path = lock_path(&dir, 998);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "{\"pid\": 4000000, \"startTime\": 1}").unwrap();
        let dead_probe = |_| ProcView::default();
        let n = acquire(&path, "{\"pid\": 1}", Duration::ZERO, &dead_probe, &|| {
            false
        })
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(parse(&fs::read_to_string(&path).unwrap()), owner(1, None));

        let live_probe = |_| ProcView {
            alive: true,
            start_time: None,
            looks_like_gateway: true,
        };
        let err = acquire(&path, "x", Duration::from_millis(150), &live_probe, &|| {
            false
        });
        assert!(matches!(err, Err(AcquireError::Timeout { .. })));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn acquire_refuses_symlinked_lock() {
        let dir = scratch("sym");
        let path = lock_path(&dir, 0);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let probe = |_| ProcView::default();
        let err = acquire(&path, "x", Duration::ZERO, &probe, &|| false);
        assert!(matches!(err, Err(AcquireError::NotRegular(_))));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn release_keeps_a_lock_that_is_not_ours() {
        let dir = scratch("rel");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOCK_NAME);
        fs::write(&path, "{\"pid\": 5, \"startTime\": 6}").unwrap();
        release(&path, 5, 7);
        assert!(path.exists());
        release(&path, 5, 6);
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
