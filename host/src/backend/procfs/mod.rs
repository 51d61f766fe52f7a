//! Host-side view of a sandbox through `/proc/<pid>`.
//!
//! Both backends use it: the docker backend with the container's init pid
//! (`State.Pid`), the local backend with our own pid. Everything here is
//! blocking and short; callers run it on the blocking pool under a deadline.
//!
//! - [`files`]: paths resolved with `openat2` relative to `/proc/<pid>/root`;
//!   `RESOLVE_IN_ROOT` clamps `..` and absolute symlinks to the sandbox root,
//!   and mutations add `RESOLVE_NO_SYMLINKS` so a planted symlink can never
//!   redirect a write outside of what the caller named.
//! - [`processes`]: the sandbox's pid namespace, identity-checked signals.
//! - [`sockets`]: listening sockets and connects inside its network namespace.
//! - [`listen_diag`]: whether one port listens there, asked of sock_diag.
//! - [`sealed`]: commands that can read the sandbox but not change it.
//! - [`parse`]: the pure parsers of `/proc` text.

mod files;
mod listen_diag;
mod parse;
mod processes;
mod sealed;
mod sockets;

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use super::BackendError;
pub(crate) use files::split_parent;
pub use listen_diag::{ListenDiagError, ListenProbe};
pub(crate) use parse::{IdMap, ResolvedUser, StatLine, parse_stat, parse_status};
// Host-side forwards verify their own processes and listeners with these.
pub(crate) use parse::{parse_cmdline, parse_net_tcp, parse_socket_link};
pub(crate) use sockets::connect_error;

/// A sandbox as seen from the host: its root, pid and network namespaces
/// are those of `init` (a host pid).
#[derive(Debug, Clone)]
pub(crate) struct ProcView {
    init: u32,
    /// `readlink /proc/<init>/ns/pid`; `None` when we may not read it.
    pid_ns: Option<String>,
    /// Number of `NSpid:` fields of init: 1 = the namespace of our procfs.
    ns_depth: usize,
    uid_map: IdMap,
    gid_map: IdMap,
}

/// A process of the sandbox with both its host and in-sandbox pid.
#[derive(Debug, Clone)]
pub(crate) struct RawProcess {
    pub host_pid: u32,
    pub ns_pid: u32,
    pub stat: StatLine,
    pub host_uid: u32,
}

impl ProcView {
    /// The sandbox whose init process is host pid `init`.
    pub(crate) fn new(init: u32) -> Result<Self, BackendError> {
        let status = read_capped(&format!("/proc/{init}/status"), 64 * 1024).map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot read /proc/{init}/status of the sandbox's init process: {e}"
            ))
        })?;
        let status = parse_status(&String::from_utf8_lossy(&status));
        let pid_ns = std::fs::read_link(format!("/proc/{init}/ns/pid"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let uid_map = read_capped(&format!("/proc/{init}/uid_map"), 64 * 1024)
            .ok()
            .and_then(|b| IdMap::parse(&String::from_utf8_lossy(&b)))
            .unwrap_or_else(IdMap::identity);
        let gid_map = read_capped(&format!("/proc/{init}/gid_map"), 64 * 1024)
            .ok()
            .and_then(|b| IdMap::parse(&String::from_utf8_lossy(&b)))
            .unwrap_or_else(IdMap::identity);
        Ok(Self {
            init,
            pid_ns,
            ns_depth: status.nspid.len().max(1),
            uid_map,
            gid_map,
        })
    }

    /// This host, seen through our own process.
    pub(crate) fn for_self() -> Result<Self, BackendError> {
        Self::new(std::process::id())
    }

    fn root(&self) -> Result<OwnedFd, BackendError> {
        let path = format!("/proc/{}/root", self.init);
        rfs::open(
            path.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT | Errno::SRCH => BackendError::Unavailable(format!(
                "the sandbox's init process (host pid {}) is gone",
                self.init
            )),
            Errno::ACCESS | Errno::PERM => BackendError::Denied(format!(
                "cannot enter {path}: reading another process's root needs root on the host"
            )),
            e => BackendError::Failed(format!("open {path}: {e}")),
        })
    }
}

impl ProcView {
    /// Runs `spec` sealed in this sandbox (see [`sealed`]); `init_start` is
    /// the init's start time the caller verified.
    pub(crate) async fn exec_sealed(
        &self,
        init_start: u64,
        spec: crate::backend::ExecSpec,
    ) -> Result<crate::backend::SealedOutput, BackendError> {
        sealed::run(self.clone(), init_start, spec).await
    }
}

/// Field 22 of `/proc/<pid>/stat`: with the pid, a process's identity.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&line).map(|s| s.start_time)
}

fn read_capped(path: &str, max: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    File::open(path)?.take(max as u64).read_to_end(&mut data)?;
    Ok(data)
}
