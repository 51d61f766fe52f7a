//! `gateway.controlUi.allowedOrigins` from openclaw.json, with OpenClaw-like hot reload:
//! a valid edit is applied in place (same pid) within about a second; an invalid edit is
//! ignored by the running gateway but makes the next start fail with exit 78.

use crate::json::{self, Value};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

pub const ORIGINS_KEY: &str = "gateway.controlUi.allowedOrigins";

/// Short enough that a change is live well inside OpenClaw's ~2 s.
const POLL_EVERY: Duration = Duration::from_millis(300);

/// Extracts the origin list. A missing key means "no extra origins"; a key of the wrong
/// type is a schema error, as in OpenClaw.
pub fn origins_from_text(text: &str) -> Result<Vec<String>, String> {
    let doc = json::parse(text)?;
    match doc.pointer(ORIGINS_KEY) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("{ORIGINS_KEY}: expected array of strings")),
            })
            .collect(),
        Some(_) => Err(format!("{ORIGINS_KEY}: Invalid input: expected array")),
    }
}

/// `Ok(None)` when there is no config file at all.
pub fn load(path: &Path) -> Result<Option<Vec<String>>, String> {
    match fs::read_to_string(path) {
        Ok(text) => origins_from_text(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Identity of the file's current version: an atomic rename changes the inode, an
/// in-place write changes size or mtime.
fn stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

pub type Origins = Arc<RwLock<Vec<String>>>;

pub fn watch(path: PathBuf, origins: Origins, log: fn(&str)) {
    // Stamp before the thread exists: a change made right after `watch`
    // returns must be seen as a change, however late the thread starts.
    let mut last = stamp(&path);
    thread::spawn(move || {
        loop {
            thread::sleep(POLL_EVERY);
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            log(&format!(
                "config change detected; evaluating reload ({ORIGINS_KEY})"
            ));
            match load(&path) {
                Ok(list) => {
                    let list = list.unwrap_or_default();
                    log(&format!(
                        "config hot reload applied (allowedOrigins={list:?})"
                    ));
                    *origins.write().unwrap_or_else(|e| e.into_inner()) = list;
                }
                Err(e) => log(&format!(
                    "config reload skipped: invalid config at {}: {e}",
                    path.display()
                )),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_origins_and_tolerates_missing_key() {
        let text = r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a","http://b"]}}}"#;
        assert_eq!(
            origins_from_text(text).unwrap(),
            vec!["http://a", "http://b"]
        );
        assert!(origins_from_text(r#"{"gateway":{}}"#).unwrap().is_empty());
    }

    #[test]
    fn wrong_types_are_schema_errors() {
        let s = r#"{"gateway":{"controlUi":{"allowedOrigins":"http://a"}}}"#;
        assert!(origins_from_text(s).is_err());
        let n = r#"{"gateway":{"controlUi":{"allowedOrigins":[1]}}}"#;
        assert!(origins_from_text(n).is_err());
        assert!(origins_from_text("{").is_err());
    }

    #[test]
    fn watcher_applies_atomic_replacements() {
        let dir = std::env::temp_dir().join(format!("fixture-cfg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("openclaw.json");
        fs::write(
            &path,
            r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a"]}}}"#,
        )
        .unwrap();
        let origins: Origins = Arc::new(RwLock::new(load(&path).unwrap().unwrap()));
        watch(path.clone(), origins.clone(), |_| {});
        let tmp = dir.join("openclaw.json.tmp");
        fs::write(
            &tmp,
            r#"{"gateway":{"controlUi":{"allowedOrigins":["http://z"]}}}"#,
        )
        .unwrap();
        fs::rename(&tmp, &path).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while origins.read().unwrap()[0] != "http://z" {
            assert!(std::time::Instant::now() < deadline, "reload not applied");
            thread::sleep(Duration::from_millis(50));
        }
        // An invalid edit keeps the running list.
        fs::write(&path, "{ broken").unwrap();
        thread::sleep(POLL_EVERY * 3);
        assert_eq!(*origins.read().unwrap(), vec!["http://z"]);
        let _ = fs::remove_dir_all(&dir);
    }
}
