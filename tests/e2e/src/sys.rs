//! Two syscalls std does not expose, declared by hand instead of pulling in libc for them.

use std::io;
use std::os::fd::AsRawFd;

const CLONE_NEWNET: i32 = 0x4000_0000;
const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Moves the calling thread into the network namespace behind `ns` (an open
/// /proc/PID/ns/net). Only call this on a thread that dies afterwards: pooled threads
/// would carry the foreign namespace into unrelated work.
pub fn enter_net_namespace(ns: &std::fs::File) -> io::Result<()> {
    // SAFETY: a valid fd for the duration of the call; setns has no memory effects.
    if unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sig` to one process (host pid namespace).
pub fn signal(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    if pid <= 1 {
        return Err(io::Error::other("refusing to signal pid <= 1"));
    }
    // SAFETY: plain syscall on a positive pid.
    if unsafe { kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SIGKILL to a whole process group (host pid namespace).
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| io::Error::other("pgid out of range"))?;
    if pgid <= 1 {
        return Err(io::Error::other("refusing to signal process group <= 1"));
    }
    // SAFETY: plain syscall; a negative pid addresses the process group.
    if unsafe { kill(-pgid, SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
