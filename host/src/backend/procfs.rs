//! Host-side view of a sandbox through `/proc/<pid>`.
//!
//! Both backends use it: the docker backend with the container's init pid
//! (`State.Pid`), the local backend with our own pid. Everything here is
//! blocking and short; callers run it on the blocking pool under a deadline.
//!
//! Paths are resolved with `openat2` relative to `/proc/<pid>/root`:
//! `RESOLVE_IN_ROOT` clamps `..` and absolute symlinks to the sandbox root,
//! and mutations add `RESOLVE_NO_SYMLINKS` so a planted symlink can never
//! redirect a write outside of what the caller named.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use super::{
    BackendError, FileContent, FileKind, FileStat, Listener, ProcessId, ProcessInfo, Signal,
    WriteSpec,
};

/// Upper bound on processes scanned, so a fork bomb cannot stall a probe.
const MAX_PROCESSES: usize = 32_768;
/// Upper bound on one `/proc/<pid>/cmdline`.
const MAX_CMDLINE: usize = 64 * 1024;
/// Upper bound on `/proc/<pid>/net/tcp{,6}` (~150 bytes per socket).
const MAX_NET_TABLE: usize = 16 * 1024 * 1024;
/// Upper bound on open fds inspected per process when mapping sockets.
const MAX_FDS_PER_PROCESS: usize = 65_536;
/// `openat2` returns EAGAIN when a concurrent rename races a `..` lookup.
const OPENAT2_RETRIES: usize = 8;

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

/// What `/proc/<pid>/stat` tells us (fields after the command name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatLine {
    pub comm: String,
    pub state: String,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Field 22, clock ticks since boot.
    pub start_time: u64,
}

/// What `/proc/<pid>/status` tells us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StatusLine {
    /// `NSpid:` fields, outermost (our procfs) first.
    pub nspid: Vec<u32>,
    pub real_uid: Option<u32>,
}

/// One LISTEN row of `/proc/<pid>/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpListenRow {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// A process of the sandbox with both its host and in-sandbox pid.
#[derive(Debug, Clone)]
pub(crate) struct RawProcess {
    pub host_pid: u32,
    pub ns_pid: u32,
    pub stat: StatLine,
    pub host_uid: u32,
}

/// `uid_map`/`gid_map` of the sandbox: `inside outside count` ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMap(Vec<(u32, u32, u32)>);

/// A user resolved from the sandbox's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub home: Option<String>,
    pub name: Option<String>,
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

    // ---- files -----------------------------------------------------------

    /// `lstat` of `path` inside the sandbox root.
    pub(crate) fn stat(&self, path: &str) -> Result<Option<FileStat>, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = match open_in_root(
            &root,
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(file_error("stat", path, e)),
        };
        let st = rfs::fstat(&fd).map_err(|e| file_error("stat", path, e))?;
        Ok(Some(self.file_stat(&st)))
    }

    fn file_stat(&self, st: &rfs::Stat) -> FileStat {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        };
        FileStat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: self.uid_map.to_inside(st.st_uid),
            gid: self.gid_map.to_inside(st.st_gid),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
        }
    }

    /// Reads at most `max` bytes of a regular file.
    pub(crate) fn read_file(&self, path: &str, max: usize) -> Result<FileContent, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = open_in_root(
            &root,
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            Errno::LOOP => {
                BackendError::Denied(format!("{path} is a symlink; refusing to follow it"))
            }
            e => file_error("read", path, e),
        })?;
        let st = rfs::fstat(&fd).map_err(|e| file_error("read", path, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => {
                return Err(BackendError::Failed(format!("{path} is a directory")));
            }
            _ => {
                return Err(BackendError::Denied(format!(
                    "{path} is not a regular file; refusing to read it"
                )));
            }
        }
        let (data, truncated) = read_fd_capped(fd, max)
            .map_err(|e| BackendError::Failed(format!("read {path}: {e}")))?;
        Ok(FileContent { data, truncated })
    }

    /// Atomic replace of a regular file; any symlink on the path is denied.
    pub(crate) fn write_file(&self, spec: &WriteSpec) -> Result<(), BackendError> {
        let path = spec.path.as_str();
        let (parent, name) = split_parent(path)?;
        let uid = self.uid_map.to_outside(spec.uid).ok_or_else(|| {
            BackendError::Denied(format!("uid {} is not mapped in the sandbox", spec.uid))
        })?;
        let gid = self.gid_map.to_outside(spec.gid).ok_or_else(|| {
            BackendError::Denied(format!("gid {} is not mapped in the sandbox", spec.gid))
        })?;
        let root = self.root()?;
        let dir = open_parent(&root, parent, path)?;
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => {
                    return Err(BackendError::Denied(format!(
                        "{path} is a symlink; refusing to write through it"
                    )));
                }
                FileType::Directory => {
                    return Err(BackendError::Failed(format!("{path} is a directory")));
                }
                _ => {
                    return Err(BackendError::Denied(format!(
                        "{path} is not a regular file; refusing to replace it"
                    )));
                }
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(file_error("write", path, e)),
        }

        let temp = TempFile::create(&dir, name).map_err(|e| file_error("write", path, e))?;
        let written = (|| -> Result<(), (&'static str, Errno)> {
            let mut file = File::from(temp.fd.try_clone().map_err(|e| ("dup", io_errno(&e)))?);
            file.write_all(&spec.data)
                .map_err(|e| ("write", io_errno(&e)))?;
            // chown before chmod: the kernel clears set-id bits on chown.
            rfs::fchown(
                &temp.fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| ("chown", e))?;
            rfs::fchmod(&temp.fd, Mode::from_raw_mode(spec.mode & 0o7777))
                .map_err(|e| ("chmod", e))?;
            rfs::fsync(&temp.fd).map_err(|e| ("fsync", e))?;
            rfs::renameat(&dir, temp.name.as_str(), &dir, name).map_err(|e| ("rename", e))?;
            Ok(())
        })();
        match written {
            Ok(()) => temp.disarm(),
            Err((step, e)) => {
                drop(temp);
                return Err(file_error(step, path, e));
            }
        }
        rfs::fsync(&dir).map_err(|e| {
            BackendError::Failed(format!(
                "{path} was replaced but syncing its directory failed: {e}"
            ))
        })
    }

    /// Removes `path` if it is a regular file whose content (when given)
    /// equals `if_content`. `Ok(false)` = absent or different.
    pub(crate) fn remove_file_if(
        &self,
        path: &str,
        if_content: Option<&[u8]>,
    ) -> Result<bool, BackendError> {
        let (parent, name) = split_parent(path)?;
        let root = self.root()?;
        let dir = match open_in_root(
            &root,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
            Err(Errno::LOOP) => {
                return Err(BackendError::Denied(format!(
                    "a symlink is on the path of {path}; refusing to remove through it"
                )));
            }
            Err(e) => return Err(file_error("remove", path, e)),
        };
        let st = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(file_error("remove", path, e)),
        };
        refuse_non_regular(path, &st)?;
        if let Some(expected) = if_content {
            let fd = match rfs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(false),
                Err(Errno::LOOP) => {
                    return Err(BackendError::Denied(format!(
                        "{path} became a symlink; refusing to remove it"
                    )));
                }
                Err(e) => return Err(file_error("remove", path, e)),
            };
            let opened = rfs::fstat(&fd).map_err(|e| file_error("remove", path, e))?;
            refuse_non_regular(path, &opened)?;
            let (data, truncated) = read_fd_capped(fd, expected.len())
                .map_err(|e| BackendError::Failed(format!("read {path}: {e}")))?;
            if truncated || data != expected {
                return Ok(false);
            }
            // The name must still point at the inode whose content we compared;
            // a new owner renaming its own lock into place wins.
            match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_dev == opened.st_dev && now.st_ino == opened.st_ino => {}
                Ok(_) | Err(Errno::NOENT) => return Ok(false),
                Err(e) => return Err(file_error("remove", path, e)),
            }
        }
        match rfs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(file_error("remove", path, e)),
        }
    }

    /// Up to `max` names in a directory, sorted; `None` when it is absent.
    pub(crate) fn list_dir(
        &self,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = match open_in_root(
            &root,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::NOTDIR) => {
                return Err(BackendError::Failed(format!("{path} is not a directory")));
            }
            Err(e) => return Err(file_error("list", path, e)),
        };
        let mut dir = rfs::Dir::new(fd).map_err(|e| file_error("list", path, e))?;
        let mut names = Vec::new();
        while names.len() < max {
            match dir.read() {
                None => break,
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_string_lossy();
                    if name != "." && name != ".." {
                        names.push(name.into_owned());
                    }
                }
                Some(Err(e)) => return Err(file_error("list", path, e)),
            }
        }
        names.sort();
        Ok(Some(names))
    }

    /// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`) with the
    /// sandbox's own `/etc/passwd` and `/etc/group`.
    pub(crate) fn resolve_user(&self, user: &str) -> Result<ResolvedUser, BackendError> {
        let read = |path: &str| -> String {
            self.read_file(path, 4 * 1024 * 1024)
                .map(|c| String::from_utf8_lossy(&c.data).into_owned())
                .unwrap_or_default()
        };
        resolve_user_spec(user, &read("/etc/passwd"), &read("/etc/group"))
    }

    // ---- processes -------------------------------------------------------

    /// Whether host pid `pid` (whose `NSpid` has `depth` fields) lives in the
    /// sandbox's pid namespace.
    fn in_sandbox(&self, pid: u32, depth: usize) -> bool {
        if let Some(ns) = &self.pid_ns
            && let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        {
            return link.to_string_lossy() == ns.as_str();
        }
        // Without the ns links (not root) only the namespace of our own
        // procfs can be recognised: exactly the processes with one NSpid.
        self.ns_depth == 1 && depth == 1
    }

    fn read_process(&self, host_pid: u32) -> Option<RawProcess> {
        let status = read_capped(&format!("/proc/{host_pid}/status"), 64 * 1024).ok()?;
        let status = parse_status(&String::from_utf8_lossy(&status));
        let depth = status.nspid.len().max(1);
        if !self.in_sandbox(host_pid, depth) {
            return None;
        }
        let stat = read_capped(&format!("/proc/{host_pid}/stat"), 4096).ok()?;
        let stat = parse_stat(&String::from_utf8_lossy(&stat))?;
        Some(RawProcess {
            host_pid,
            ns_pid: status.nspid.last().copied().unwrap_or(host_pid),
            stat,
            host_uid: status.real_uid.unwrap_or(u32::MAX),
        })
    }

    /// Every process in the sandbox's pid namespace.
    pub(crate) fn raw_processes(&self) -> Result<Vec<RawProcess>, BackendError> {
        let entries = std::fs::read_dir("/proc")
            .map_err(|e| BackendError::Failed(format!("cannot list /proc: {e}")))?;
        let mut out = Vec::new();
        for (seen, entry) in entries.flatten().enumerate() {
            if seen >= MAX_PROCESSES {
                tracing::warn!(max = MAX_PROCESSES, "process scan stopped at its cap");
                break;
            }
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(p) = self.read_process(pid) {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub(crate) fn processes(&self) -> Result<Vec<ProcessInfo>, BackendError> {
        let raw = self.raw_processes()?;
        let ns_of: HashMap<u32, u32> = raw.iter().map(|p| (p.host_pid, p.ns_pid)).collect();
        let mut out: Vec<ProcessInfo> = raw
            .iter()
            .map(|p| ProcessInfo {
                id: ProcessId {
                    pid: p.ns_pid,
                    start_time: p.stat.start_time,
                },
                // A parent outside the sandbox (the engine's shim) shows as 0,
                // exactly as it does from inside.
                ppid: ns_of.get(&p.stat.ppid).copied().unwrap_or(0),
                uid: self.uid_map.to_inside(p.host_uid),
                state: p.stat.state.clone(),
                comm: p.stat.comm.clone(),
                cmdline: read_cmdline(p.host_pid),
            })
            .collect();
        out.sort_by_key(|p| p.id.pid);
        Ok(out)
    }

    /// Host pid of the sandbox process `ns_pid`, if it exists.
    pub(crate) fn host_pid_of(&self, ns_pid: u32) -> Result<Option<u32>, BackendError> {
        if self.ns_depth == 1 && self.pid_ns_is_ours() {
            return Ok(self.read_process(ns_pid).map(|p| p.host_pid));
        }
        Ok(self
            .raw_processes()?
            .into_iter()
            .find(|p| p.ns_pid == ns_pid)
            .map(|p| p.host_pid))
    }

    fn pid_ns_is_ours(&self) -> bool {
        let ours = std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        match (&self.pid_ns, ours) {
            (Some(a), Some(b)) => *a == b,
            _ => self.init == std::process::id(),
        }
    }

    /// Sends `signal` to `id` if it is still the same process. The process
    /// is pinned with a pidfd first, then its start time is compared, so a
    /// reused pid can never receive the signal.
    pub(crate) fn signal(&self, id: ProcessId, signal: Signal) -> Result<bool, BackendError> {
        let Some(host_pid) = self.host_pid_of(id.pid)? else {
            return Ok(false);
        };
        let Some(pid) = Pid::from_raw(host_pid as i32) else {
            return Ok(false);
        };
        let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(Errno::SRCH) => return Ok(false),
            Err(e) => return Err(BackendError::Failed(format!("pidfd_open({host_pid}): {e}"))),
        };
        match self.read_process(host_pid) {
            // A zombie has already exited: its identity is gone.
            Some(p)
                if p.ns_pid == id.pid
                    && p.stat.start_time == id.start_time
                    && p.stat.state != "Z"
                    && p.stat.state != "X" => {}
            _ => return Ok(false),
        }
        match rustix::process::pidfd_send_signal(&pidfd, to_rustix_signal(signal)) {
            Ok(()) => Ok(true),
            Err(Errno::SRCH) => Ok(false),
            Err(Errno::PERM) => Err(BackendError::Denied(format!(
                "not permitted to signal pid {} of the sandbox",
                id.pid
            ))),
            Err(e) => Err(BackendError::Failed(format!("signal pid {}: {e}", id.pid))),
        }
    }

    /// SIGKILL to every sandbox process in the session or process group led
    /// by host pid `leader`; returns how many are still alive afterwards
    /// (zombies count as gone).
    pub(crate) fn kill_session(&self, leader: u32) -> Result<usize, BackendError> {
        if let Some(pid) = Pid::from_raw(leader as i32) {
            // The group first: one syscall reaches every member at once.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let members = |procs: &[RawProcess]| -> Vec<u32> {
            procs
                .iter()
                .filter(|p| p.stat.session == leader || p.stat.pgrp == leader)
                .filter(|p| p.stat.state != "Z" && p.stat.state != "X")
                .map(|p| p.host_pid)
                .collect()
        };
        for host_pid in members(&self.raw_processes()?) {
            if let Some(pid) = Pid::from_raw(host_pid as i32)
                && let Ok(fd) = rustix::process::pidfd_open(pid, PidfdFlags::empty())
            {
                let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            }
        }
        Ok(members(&self.raw_processes()?).len())
    }

    // ---- sockets ---------------------------------------------------------

    /// Listening TCP sockets of the sandbox's network namespace.
    pub(crate) fn listeners(&self) -> Result<Vec<Listener>, BackendError> {
        let mut rows = Vec::new();
        for (file, v6) in [("tcp", false), ("tcp6", true)] {
            let path = format!("/proc/{}/net/{file}", self.init);
            match read_capped(&path, MAX_NET_TABLE) {
                Ok(text) => rows.extend(parse_net_tcp(&String::from_utf8_lossy(&text), v6)),
                // No IPv6 in the kernel or namespace: nothing listens there.
                Err(e) if v6 && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackendError::Failed(format!("read {path}: {e}"))),
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<u64> = rows.iter().map(|r| r.inode).collect();
        let owners = self.socket_owners(&wanted)?;
        let mut out: Vec<Listener> = rows
            .into_iter()
            .map(|r| Listener {
                address: r.addr.to_string(),
                port: r.port,
                owner: owners.get(&r.inode).copied(),
            })
            .collect();
        out.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
        out.dedup();
        Ok(out)
    }

    /// Maps socket inodes to the oldest sandbox process holding them.
    fn socket_owners(
        &self,
        wanted: &HashSet<u64>,
    ) -> Result<HashMap<u64, ProcessId>, BackendError> {
        let mut owners: HashMap<u64, ProcessId> = HashMap::new();
        for p in self.raw_processes()? {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", p.host_pid)) else {
                continue;
            };
            for fd in fds.flatten().take(MAX_FDS_PER_PROCESS) {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let Some(inode) = parse_socket_link(&target.to_string_lossy()) else {
                    continue;
                };
                if !wanted.contains(&inode) {
                    continue;
                }
                let id = ProcessId {
                    pid: p.ns_pid,
                    start_time: p.stat.start_time,
                };
                owners
                    .entry(inode)
                    .and_modify(|cur| {
                        if (id.start_time, id.pid) < (cur.start_time, cur.pid) {
                            *cur = id;
                        }
                    })
                    .or_insert(id);
            }
        }
        Ok(owners)
    }

    /// Connects to `127.0.0.1:port` inside the sandbox's network namespace.
    ///
    /// A fresh OS thread enters the namespace (setns is per thread and must
    /// never leak into a runtime worker), connects, and hands back the fd;
    /// a socket stays in the namespace it was created in.
    pub(crate) async fn connect_loopback(
        &self,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream, BackendError> {
        let ns_path = format!("/proc/{}/ns/net", self.init);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("runner-netns-connect".into())
            .spawn(move || {
                let result = netns_connect(&ns_path, port, timeout);
                let _ = tx.send(result);
            })
            .map_err(|e| BackendError::Failed(format!("cannot start netns thread: {e}")))?;
        let stream = match tokio::time::timeout(timeout + Duration::from_millis(500), rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => {
                return Err(BackendError::Failed("netns connect thread died".into()));
            }
            Err(_) => {
                return Err(BackendError::Timeout(format!(
                    "connect to 127.0.0.1:{port} in the sandbox took longer than {timeout:?}"
                )));
            }
        };
        tokio::net::TcpStream::from_std(stream)
            .map_err(|e| BackendError::Failed(format!("register socket with tokio: {e}")))
    }
}

fn netns_connect(ns_path: &str, port: u16, timeout: Duration) -> Result<TcpStream, BackendError> {
    let ns = File::open(ns_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            BackendError::Unavailable(format!("{ns_path} is gone: the sandbox stopped"))
        }
        std::io::ErrorKind::PermissionDenied => BackendError::Denied(format!(
            "cannot open {ns_path}: entering a sandbox's network namespace needs root"
        )),
        _ => BackendError::Failed(format!("open {ns_path}: {e}")),
    })?;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| BackendError::Denied(format!("setns({ns_path}): {e}")))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| connect_error(port, timeout, &e))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| BackendError::Failed(format!("set_nonblocking: {e}")))?;
    Ok(stream)
}

/// Maps a loopback connect failure to a typed error.
pub(crate) fn connect_error(port: u16, timeout: Duration, e: &std::io::Error) -> BackendError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => BackendError::Failed(format!(
            "connection refused: nothing listens on 127.0.0.1:{port} in the sandbox"
        )),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => BackendError::Timeout(
            format!("connect to 127.0.0.1:{port} took longer than {timeout:?}"),
        ),
        _ => BackendError::Failed(format!("connect to 127.0.0.1:{port}: {e}")),
    }
}

fn to_rustix_signal(signal: Signal) -> rustix::process::Signal {
    use rustix::process::Signal as S;
    match signal {
        Signal::Term => S::TERM,
        Signal::Kill => S::KILL,
        Signal::Int => S::INT,
        Signal::Hup => S::HUP,
        Signal::Cont => S::CONT,
    }
}

// ---- file helpers ---------------------------------------------------------

/// A temp file next to its target that is unlinked on drop unless disarmed.
struct TempFile<'a> {
    dir: &'a OwnedFd,
    name: String,
    fd: OwnedFd,
    armed: bool,
}

impl<'a> TempFile<'a> {
    fn create(dir: &'a OwnedFd, target: &str) -> Result<Self, Errno> {
        let mut last = Errno::EXIST;
        for _ in 0..8 {
            let mut rand = [0u8; 8];
            rustix::rand::getrandom(&mut rand, rustix::rand::GetRandomFlags::empty())?;
            let suffix: String = rand.iter().map(|b| format!("{b:02x}")).collect();
            // Keep the name within NAME_MAX whatever the target's length.
            let stem: String = target.chars().take(200).collect();
            let name = format!(".{stem}.runner-{suffix}.tmp");
            match rfs::openat(
                dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    return Ok(Self {
                        dir,
                        name,
                        fd,
                        armed: true,
                    });
                }
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = rfs::unlinkat(self.dir, self.name.as_str(), AtFlags::empty())
        {
            tracing::warn!(temp = %self.name, error = %e, "could not remove temp file");
        }
    }
}

fn open_in_root(
    root: &OwnedFd,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut last = Errno::AGAIN;
    for _ in 0..OPENAT2_RETRIES {
        match rfs::openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) => last = Errno::AGAIN,
            other => return other,
        }
    }
    Err(last)
}

fn open_parent(root: &OwnedFd, parent: &str, path: &str) -> Result<OwnedFd, BackendError> {
    open_in_root(
        root,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::LOOP => BackendError::Denied(format!(
            "a symlink is on the path of {path}; refusing to write through it"
        )),
        Errno::NOENT => BackendError::Failed(format!("directory {parent} does not exist")),
        Errno::NOTDIR => BackendError::Failed(format!("{parent} is not a directory")),
        e => file_error("open", parent, e),
    })
}

fn refuse_non_regular(path: &str, st: &rfs::Stat) -> Result<(), BackendError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(BackendError::Denied(format!(
            "{path} is a symlink; only regular files are removed"
        ))),
        FileType::Directory => Err(BackendError::Denied(format!(
            "{path} is a directory; only regular files are removed"
        ))),
        _ => Err(BackendError::Denied(format!(
            "{path} is not a regular file; only regular files are removed"
        ))),
    }
}

fn check_absolute(path: &str) -> Result<(), BackendError> {
    if !path.starts_with('/') {
        return Err(BackendError::Denied(format!(
            "path '{path}' is not absolute; sandbox paths must start with /"
        )));
    }
    if path.contains('\0') {
        return Err(BackendError::Denied("path contains a NUL byte".into()));
    }
    Ok(())
}

/// `/a/b/c` → (`/a/b`, `c`); the last component must be a plain name.
pub(crate) fn split_parent(path: &str) -> Result<(&str, &str), BackendError> {
    check_absolute(path)?;
    let (parent, name) = path.rsplit_once('/').unwrap_or(("/", path));
    if name.is_empty() || name == "." || name == ".." {
        return Err(BackendError::Denied(format!(
            "'{path}' does not name a file (it ends in '/', '.' or '..')"
        )));
    }
    Ok((if parent.is_empty() { "/" } else { parent }, name))
}

fn file_error(op: &str, path: &str, e: Errno) -> BackendError {
    match e {
        Errno::ACCESS | Errno::PERM => {
            BackendError::Denied(format!("{op} {path}: permission denied"))
        }
        Errno::LOOP => BackendError::Denied(format!("{op} {path}: a symlink is in the way")),
        Errno::XDEV => BackendError::Denied(format!("{op} {path}: escapes the sandbox root")),
        Errno::NOENT => BackendError::Failed(format!("{op} {path}: no such file or directory")),
        Errno::ROFS => BackendError::Failed(format!("{op} {path}: read-only file system")),
        Errno::NOSPC => BackendError::Failed(format!("{op} {path}: no space left on device")),
        e => BackendError::Failed(format!("{op} {path}: {e}")),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .map(Errno::from_raw_os_error)
        .unwrap_or(Errno::IO)
}

/// Reads at most `max` bytes; `truncated` when more were there.
fn read_fd_capped(fd: OwnedFd, max: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let file = File::from(fd);
    let mut data = Vec::with_capacity(max.min(64 * 1024) + 1);
    file.take(max as u64 + 1).read_to_end(&mut data)?;
    let truncated = data.len() > max;
    data.truncate(max);
    Ok((data, truncated))
}

fn read_capped(path: &str, max: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    File::open(path)?.take(max as u64).read_to_end(&mut data)?;
    Ok(data)
}

fn read_cmdline(host_pid: u32) -> Vec<String> {
    read_capped(&format!("/proc/{host_pid}/cmdline"), MAX_CMDLINE)
        .map(|raw| parse_cmdline(&raw))
        .unwrap_or_default()
}

// ---- pure parsers ---------------------------------------------------------

/// Parses `/proc/<pid>/stat`. The command name sits between the first `(`
/// and the *last* `)` because it may itself contain spaces and parentheses.
pub(crate) fn parse_stat(line: &str) -> Option<StatLine> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(StatLine {
        comm,
        state: field(3)?.to_string(),
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Parses the `NSpid:` and `Uid:` lines of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> StatusLine {
    let mut out = StatusLine::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("NSpid:") {
            out.nspid = rest
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
        } else if let Some(rest) = line.strip_prefix("Uid:") {
            out.real_uid = rest.split_whitespace().next().and_then(|f| f.parse().ok());
        }
    }
    out
}

/// LISTEN rows (state `0A`) of `/proc/net/tcp` or `tcp6`.
pub(crate) fn parse_net_tcp(text: &str, v6: bool) -> Vec<TcpListenRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            Some(TcpListenRow {
                addr: parse_hex_addr(addr, v6)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address with `%08X` in host
/// byte order, so the bytes of each word come back with `to_ne_bytes`.
fn parse_hex_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    if v6 {
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    } else {
        if hex.len() != 8 {
            return None;
        }
        Some(IpAddr::V4(Ipv4Addr::from(word(0)?)))
    }
}

/// `socket:[12345]` → 12345.
pub(crate) fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

pub(crate) fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

impl IdMap {
    fn identity() -> Self {
        Self(vec![(0, 0, u32::MAX)])
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let ranges: Vec<(u32, u32, u32)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().map(|x| x.parse::<u32>().ok());
                Some((f.next()??, f.next()??, f.next()??))
            })
            .collect();
        (!ranges.is_empty()).then_some(Self(ranges))
    }

    /// Host id → sandbox id; unmapped ids show as the overflow id 65534,
    /// as the kernel shows them inside.
    pub(crate) fn to_inside(&self, outside: u32) -> u32 {
        self.0
            .iter()
            .find(|(_, o, n)| outside >= *o && (outside - o) < *n)
            .map(|(i, o, _)| i + (outside - o))
            .unwrap_or(65534)
    }

    pub(crate) fn to_outside(&self, inside: u32) -> Option<u32> {
        self.0
            .iter()
            .find(|(i, _, n)| inside >= *i && (inside - i) < *n)
            .map(|(i, o, _)| o + (inside - i))
    }
}

/// Resolves a docker-style user spec against passwd/group text.
pub(crate) fn resolve_user_spec(
    spec: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, BackendError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(BackendError::NoSuchUser(format!("empty user in '{spec}'")));
    }
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = match user.parse::<u32>() {
        Ok(uid) => entries.iter().find(|f| f[2].parse() == Ok(uid)),
        Err(_) => entries.iter().find(|f| f[0] == user),
    };
    let mut resolved = match (found, user.parse::<u32>()) {
        (Some(f), _) => ResolvedUser {
            uid: f[2]
                .parse()
                .map_err(|_| BackendError::NoSuchUser(format!("bad passwd entry for '{user}'")))?,
            gid: f[3]
                .parse()
                .map_err(|_| BackendError::NoSuchUser(format!("bad passwd entry for '{user}'")))?,
            home: Some(f[5].to_string()).filter(|h| !h.is_empty()),
            name: Some(f[0].to_string()),
        },
        // A numeric uid needs no passwd entry; its group then defaults to
        // the same number rather than to root's group.
        (None, Ok(uid)) => ResolvedUser {
            uid,
            gid: uid,
            home: None,
            name: None,
        },
        (None, Err(_)) => {
            return Err(BackendError::NoSuchUser(format!(
                "user '{user}' is not in the sandbox's /etc/passwd"
            )));
        }
    };
    if let Some(g) = grp {
        resolved.gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    BackendError::NoSuchUser(format!(
                        "group '{g}' is not in the sandbox's /etc/group"
                    ))
                })?,
        };
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_plain() {
        let line = "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 2400000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "sleep");
        assert_eq!(s.state, "S");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.session, 1234);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn stat_line_comm_with_spaces_and_parens() {
        let line = "42 (a) b (c)) R 7 42 40 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.state, "R");
        assert_eq!(s.ppid, 7);
        assert_eq!(s.session, 40);
        assert_eq!(s.start_time, 555);
    }

    #[test]
    fn stat_line_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("12 )x( S 1 2 3"), None);
    }

    #[test]
    fn status_nspid_and_uid() {
        let text =
            "Name:\tsleep\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\nNSpid:\t31337\t12\n";
        let s = parse_status(text);
        assert_eq!(s.nspid, vec![31337, 12]);
        assert_eq!(s.real_uid, Some(1000));
        let top = parse_status("NSpid:\t77\nUid:\t0\t0\t0\t0\n");
        assert_eq!(top.nspid, vec![77]);
        assert_eq!(parse_status("Name:\tx\n"), StatusLine::default());
    }

    #[test]
    fn net_tcp_listen_rows() {
        // Real rows from a little-endian host.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24567 1 0000000000000000 100 0 0 10 0\n   1: 00000000:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 24568 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 24999 1 0000000000000000 20 4 30 10 -1\n";
        let rows = parse_net_tcp(v4, false);
        assert_eq!(rows.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr.to_string(), "127.0.0.1");
        }
        assert_eq!(rows[0].port, 8080);
        assert_eq!(rows[0].inode, 24567);
        assert_eq!(rows[1].addr.to_string(), "0.0.0.0");
        assert_eq!(rows[1].port, 18789);

        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_net_tcp(v6, true);
        assert_eq!(rows.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr.to_string(), "::1");
        }
        assert_eq!(rows[0].port, 18789);
        assert_eq!(rows[1].addr.to_string(), "::");
        assert_eq!(rows[1].inode, 31338);
        assert!(parse_net_tcp("header\n   0: zz:1 00:0 0A 0 0 0 0 0 1\n", false).is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[24567]"), Some(24567));
        assert_eq!(parse_socket_link("pipe:[24567]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(parse_cmdline(b"sleep\x00300\x00"), vec!["sleep", "300"]);
        assert_eq!(parse_cmdline(b"openclaw-gateway"), vec!["openclaw-gateway"]);
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn id_maps() {
        let m = IdMap::parse("         0     100000      65536\n").unwrap();
        assert_eq!(m.to_inside(100000), 0);
        assert_eq!(m.to_inside(101000), 1000);
        assert_eq!(m.to_inside(5), 65534);
        assert_eq!(m.to_outside(1000), Some(101000));
        assert_eq!(m.to_outside(70000), None);
        let id = IdMap::parse("0 0 4294967295\n").unwrap();
        assert_eq!(id.to_inside(1000), 1000);
        assert_eq!(id.to_outside(0), Some(0));
    }

    #[test]
    fn split_parent_paths() {
        assert_eq!(split_parent("/a/b/c").unwrap(), ("/a/b", "c"));
        assert_eq!(split_parent("/c").unwrap(), ("/", "c"));
        assert!(split_parent("/a/").is_err());
        assert!(split_parent("/a/..").is_err());
        assert!(split_parent("rel/x").is_err());
    }

    #[test]
    fn user_specs() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000::/sandbox:/bin/sh\n";
        let group = "root:x:0:\nsandbox:x:1000:\nwheel:x:10:sandbox\n";
        let u = resolve_user_spec("sandbox", passwd, group).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_deref()),
            (1000, 1000, Some("/sandbox"))
        );
        let u = resolve_user_spec("sandbox:wheel", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user_spec("0", passwd, group).unwrap();
        assert_eq!(u.name.as_deref(), Some("root"));
        let u = resolve_user_spec("4242:7", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 7));
        assert!(matches!(
            resolve_user_spec("nosuchuser", passwd, group),
            Err(BackendError::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve_user_spec("sandbox:nogroup", passwd, group),
            Err(BackendError::NoSuchUser(_))
        ));
    }
}
