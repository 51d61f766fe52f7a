//! The sandbox's processes: enumeration, identity-checked signals and
//! process-group kills.

use std::collections::HashMap;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use super::parse::{parse_cmdline, parse_stat, parse_status};
use super::{ProcView, RawProcess, read_capped};
use crate::backend::{BackendError, ProcessId, ProcessInfo, Signal};

/// Upper bound on processes scanned, so a fork bomb cannot stall a probe.
const MAX_PROCESSES: usize = 32_768;
/// Upper bound on one `/proc/<pid>/cmdline`.
const MAX_CMDLINE: usize = 64 * 1024;

impl ProcView {
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
        // One readlink rules out the host's other processes before any file
        // is read (a scan walks every process of the host).
        if let Some(ns) = &self.pid_ns
            && let Ok(link) = std::fs::read_link(format!("/proc/{host_pid}/ns/pid"))
            && link.to_string_lossy() != ns.as_str()
        {
            return None;
        }
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
    /// (zombies count as gone). Only processes proven to be in the sandbox
    /// are touched: a leader that is gone leaves its number free for reuse.
    pub(crate) fn kill_session(&self, leader: u32) -> Result<usize, BackendError> {
        let members = |procs: &[RawProcess]| -> Vec<RawProcess> {
            procs
                .iter()
                .filter(|p| p.stat.session == leader || p.stat.pgrp == leader)
                .filter(|p| p.stat.state != "Z" && p.stat.state != "X")
                .cloned()
                .collect()
        };
        let found = members(&self.raw_processes()?);
        if found.is_empty() {
            return Ok(0);
        }
        if found.iter().any(|p| p.stat.pgrp == leader)
            && let Some(pid) = Pid::from_raw(leader as i32)
        {
            // One syscall reaches the whole group at once, before it can fork.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        for p in &found {
            if let Some(pid) = Pid::from_raw(p.host_pid as i32)
                && let Ok(fd) = rustix::process::pidfd_open(pid, PidfdFlags::empty())
            {
                let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            }
        }
        Ok(members(&self.raw_processes()?).len())
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

fn read_cmdline(host_pid: u32) -> Vec<String> {
    read_capped(&format!("/proc/{host_pid}/cmdline"), MAX_CMDLINE)
        .map(|raw| parse_cmdline(&raw))
        .unwrap_or_default()
}
