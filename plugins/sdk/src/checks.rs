//! Probes shared by every agent plugin.

use crate::Error;
use crate::bindings::runner::plugin::types::ProcessId;
use crate::{FileKind, FileStat, Sandbox};

/// Why a file fails a safety rule; `None` when it passes.
pub type Violation = Option<String>;

/// A staged guard or env file: regular file, root:root, mode 0444.
pub fn root_owned_readonly(path: &str, stat: Option<&FileStat>) -> Violation {
    let Some(st) = stat else {
        return Some(format!("{path} is missing"));
    };
    if st.kind != FileKind::Regular {
        return Some(format!("{path} is a {:?}, not a regular file", st.kind));
    }
    if st.uid != 0 || st.gid != 0 {
        return Some(format!(
            "{path} is owned by {}:{}, not root:root",
            st.uid, st.gid
        ));
    }
    if st.mode != 0o444 {
        return Some(format!("{path} has mode {:o}, not 444", st.mode));
    }
    None
}

/// A source we may copy from: a regular file (never a symlink) owned by root
/// and writable by nobody but its owner.
pub fn trusted_source(path: &str, stat: Option<&FileStat>) -> Violation {
    let Some(st) = stat else {
        return Some(format!("{path} is missing"));
    };
    if st.kind != FileKind::Regular {
        return Some(format!("{path} is a {:?}, not a regular file", st.kind));
    }
    if st.uid != 0 {
        return Some(format!("{path} is owned by uid {}, not root", st.uid));
    }
    if st.mode & 0o020 != 0 {
        return Some(format!("{path} is group-writable (mode {:o})", st.mode));
    }
    if st.mode & 0o002 != 0 {
        return Some(format!("{path} is world-writable (mode {:o})", st.mode));
    }
    None
}

/// Is `id` alive with the same start time and not a zombie?
pub fn identity_alive(sandbox: &Sandbox, id: ProcessId) -> Result<bool, Error> {
    Ok(sandbox
        .processes()?
        .iter()
        .any(|p| p.id.pid == id.pid && p.id.start_time == id.start_time && p.state != "Z"))
}

/// The outcome of an HTTP liveness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpProbe {
    /// Answered with one of the accepted codes.
    Accepted(u16),
    /// Answered with another code.
    Rejected(u16),
    /// Nothing answered (refused, reset, timed out).
    NoAnswer(String),
}

/// `GET path` on the sandbox loopback; accepted when the code is in `codes`.
pub fn http_code_in(
    sandbox: &Sandbox,
    port: u16,
    path: &str,
    codes: &[u16],
    timeout_ms: u32,
) -> HttpProbe {
    match sandbox.http_get(port, path, timeout_ms) {
        Ok(resp) if codes.contains(&resp.status) => HttpProbe::Accepted(resp.status),
        Ok(resp) => HttpProbe::Rejected(resp.status),
        Err(e) => HttpProbe::NoAnswer(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: FileKind, mode: u32, uid: u32, gid: u32) -> FileStat {
        FileStat {
            kind,
            mode,
            uid,
            gid,
            size: 10,
            mtime: 0,
        }
    }

    #[test]
    fn staged_guard_must_be_root_root_0444_regular() {
        assert_eq!(
            root_owned_readonly("/g", Some(&st(FileKind::Regular, 0o444, 0, 0))),
            None
        );
        assert!(root_owned_readonly("/g", None).unwrap().contains("missing"));
        assert!(root_owned_readonly("/g", Some(&st(FileKind::Symlink, 0o777, 0, 0))).is_some());
        assert!(
            root_owned_readonly("/g", Some(&st(FileKind::Regular, 0o644, 0, 0)))
                .unwrap()
                .contains("644")
        );
        assert!(root_owned_readonly("/g", Some(&st(FileKind::Regular, 0o444, 1000, 0))).is_some());
    }

    #[test]
    fn group_writable_or_symlinked_source_is_untrusted() {
        assert_eq!(
            trusted_source("/s", Some(&st(FileKind::Regular, 0o644, 0, 0))),
            None
        );
        assert!(
            trusted_source("/s", Some(&st(FileKind::Regular, 0o664, 0, 0)))
                .unwrap()
                .contains("writable")
        );
        assert!(
            trusted_source("/s", Some(&st(FileKind::Regular, 0o646, 0, 0)))
                .unwrap()
                .contains("world-writable")
        );
        assert!(
            trusted_source("/s", Some(&st(FileKind::Regular, 0o664, 0, 0)))
                .unwrap()
                .contains("group-writable")
        );
        assert!(trusted_source("/s", Some(&st(FileKind::Symlink, 0o777, 0, 0))).is_some());
        assert!(trusted_source("/s", Some(&st(FileKind::Regular, 0o644, 1000, 0))).is_some());
    }
}
