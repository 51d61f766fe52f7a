//! The identity record of a forward: `<state dir>/forwards/<bind>-<port>.json`.
//!
//! Written by the process that holds the listener, only after the listener is
//! bound (so a record never claims a port its writer does not hold), replaced
//! atomically (temp file in the same directory + rename) so readers never see
//! half a record, and removed by its writer on a clean exit. Readers treat it
//! as a claim to verify, never as proof: see [`super::identity`].
//!
//! Reads and writes go through [`crate::safe_fs`]: a symlink, FIFO,
//! directory or oversized file at a record's path is reported as an
//! unreadable record at once (never followed, never waited on), and a write
//! replaces whatever is at the path instead of writing through it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::backend::ProcessId;
use crate::safe_fs;

pub const RECORD_SCHEMA: &str = "runner.forward/v1";
/// A record is a few hundred bytes; anything bigger is not ours.
const MAX_RECORD: u64 = 64 * 1024;
/// Upper bound on records listed, so a flooded directory cannot stall a run.
const MAX_RECORDS: usize = 4096;

/// Who serves the forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordMode {
    /// A `runner forward serve` process of its own.
    Detached,
    /// A task inside a long-running runner (`runner watch`).
    InProcess,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardRecord {
    pub schema: String,
    pub mode: RecordMode,
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` of the writer.
    pub start_time: u64,
    pub backend: String,
    pub sandbox: String,
    pub sandbox_port: u16,
    pub bind: IpAddr,
    pub host_port: u16,
    pub started_at: String,
    pub updated_at: String,
    pub connections: u64,
    pub bytes: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

impl ForwardRecord {
    pub fn identity(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

pub fn stem(bind: IpAddr, port: u16) -> String {
    format!("{bind}-{port}")
}

pub fn record_path(dir: &Path, bind: IpAddr, port: u16) -> PathBuf {
    dir.join(format!("{}.json", stem(bind, port)))
}

pub fn log_path(dir: &Path, bind: IpAddr, port: u16) -> PathBuf {
    dir.join(format!("{}.log", stem(bind, port)))
}

/// Parses a record; anything but a `runner.forward/v1` object is an error.
pub fn parse(bytes: &[u8]) -> Result<ForwardRecord, String> {
    let record: ForwardRecord =
        serde_json::from_slice(bytes).map_err(|e| format!("not a forward record: {e}"))?;
    if record.schema != RECORD_SCHEMA {
        return Err(format!("unknown record schema '{}'", record.schema));
    }
    Ok(record)
}

/// Reads a record; `Ok(None)` when there is none. Anything but a regular
/// file of at most 64 KiB is refused: the state dir is ours and nothing in
/// it should point elsewhere.
pub fn read(path: &Path) -> Result<Option<ForwardRecord>, String> {
    let data = match safe_fs::read_regular(path, MAX_RECORD) {
        Ok(data) => data,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    parse(&data).map(Some)
}

/// Replaces `path` atomically (safe_fs::write_atomic). No fsync: the
/// record describes a live process, and after a crash that process is gone
/// anyway, so a lost update costs nothing while an fsync every refresh
/// would.
pub fn write_atomic(path: &Path, record: &ForwardRecord) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    safe_fs::write_atomic(path, &bytes, 0o644).map_err(std::io::Error::other)
}

/// Removes the record only if it still names `id`, so a writer never
/// deletes the record of a newer forward on the same port.
pub fn remove_if(path: &Path, id: ProcessId) -> bool {
    match read(path) {
        Ok(Some(r)) if r.identity() == id => std::fs::remove_file(path).is_ok(),
        _ => false,
    }
}

/// Every record in `dir` (sorted by file name), with unreadable ones as
/// errors so callers can report them.
pub fn list(dir: &Path) -> Vec<(PathBuf, Result<ForwardRecord, String>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .take(MAX_RECORDS)
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Temp files start with a dot.
            name.ends_with(".json") && !name.starts_with('.')
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| match read(&p) {
            Ok(Some(r)) => Some((p, Ok(r))),
            Ok(None) => None,
            Err(e) => Some((p, Err(e))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ForwardRecord {
        ForwardRecord {
            schema: RECORD_SCHEMA.into(),
            mode: RecordMode::Detached,
            pid: 4242,
            start_time: 987_654,
            backend: "docker".into(),
            sandbox: "sb1".into(),
            sandbox_port: 18789,
            bind: "127.0.0.1".parse().unwrap(),
            host_port: 18790,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:02.000Z".into(),
            connections: 3,
            bytes: 1234,
            errors: 1,
            last_error: Some("connection refused".into()),
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("runner-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_round_trip_and_name_their_port() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"mode\":\"detached\""), "{text}");
        assert_eq!(parse(text.as_bytes()).unwrap(), r);
        let dir = Path::new("/s/forwards");
        assert_eq!(
            record_path(dir, r.bind, 18790),
            Path::new("/s/forwards/127.0.0.1-18790.json")
        );
        assert_eq!(
            log_path(dir, "::1".parse().unwrap(), 80),
            Path::new("/s/forwards/::1-80.log")
        );
    }

    #[test]
    fn foreign_or_future_records_are_rejected() {
        assert!(parse(b"{}").is_err());
        assert!(parse(b"not json").is_err());
        let mut r = sample();
        r.schema = "runner.forward/v9".into();
        let err = parse(&serde_json::to_vec(&r).unwrap()).unwrap_err();
        assert!(err.contains("runner.forward/v9"), "{err}");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["mode"] = "sideways".into();
        assert!(parse(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn writes_are_atomic_listed_and_removed_by_identity_only() {
        let dir = tempdir("rw");
        let r = sample();
        let path = record_path(&dir, r.bind, r.host_port);
        write_atomic(&path, &r).unwrap();
        write_atomic(&path, &r).unwrap();
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(read(&path).unwrap(), Some(r.clone()));
        std::fs::write(dir.join("junk.json"), b"{").unwrap();
        let listed = list(&dir);
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|(_, x)| x.as_ref().ok() == Some(&r)));
        assert!(listed.iter().any(|(_, x)| x.is_err()));
        // Another identity does not remove it; the right one does.
        let other = ProcessId {
            pid: r.pid,
            start_time: r.start_time + 1,
        };
        assert!(!remove_if(&path, other));
        assert!(remove_if(&path, r.identity()));
        assert_eq!(read(&path).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_record_is_refused() {
        let dir = tempdir("link");
        let target = dir.join("elsewhere");
        std::fs::write(&target, serde_json::to_vec(&sample()).unwrap()).unwrap();
        let link = dir.join("127.0.0.1-1.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_directory_or_huge_record_is_refused_at_once() {
        let dir = tempdir("odd");
        let fifo = dir.join("127.0.0.1-2.json");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = read(&fifo).unwrap_err();
        assert!(err.contains("is a FIFO, not a regular file"), "{err}");
        let sub = dir.join("127.0.0.1-3.json");
        std::fs::create_dir(&sub).unwrap();
        assert!(read(&sub).unwrap_err().contains("is a directory"));
        let huge = dir.join("127.0.0.1-4.json");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(5 << 30)
            .unwrap();
        assert!(
            read(&huge)
                .unwrap_err()
                .contains("larger than the 64 KiB limit")
        );
        assert_eq!(list(&dir).iter().filter(|(_, r)| r.is_err()).count(), 3);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // A write replaces what is there instead of writing through it.
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.join("127.0.0.1-5.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, &sample()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert_eq!(read(&link).unwrap(), Some(sample()));
        write_atomic(&fifo, &sample()).unwrap();
        assert_eq!(read(&fifo).unwrap(), Some(sample()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
