//! The few libc calls std does not wrap. Declared by hand because the fixture must have
//! no dependencies (std links libc anyway, also in the static build).

use std::sync::atomic::{AtomicBool, Ordering};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn getuid() -> u32;
    fn setuid(uid: u32) -> i32;
    fn setgid(gid: u32) -> i32;
    fn setgroups(size: usize, list: *const u32) -> i32;
}

static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signum: i32) {
    // Only an atomic store: anything else is not async-signal-safe.
    TERMINATE.store(true, Ordering::SeqCst);
}

/// SIGTERM/SIGINT request a clean stop (lock removed, exit 0). SIGHUP keeps its default
/// action on purpose: OpenClaw has no handler and dies leaving its locks.
pub fn install_termination_handlers() {
    let handler = on_terminate as extern "C" fn(i32) as usize;
    // SAFETY: the handler only touches an atomic; signal() has no other preconditions.
    unsafe {
        signal(SIGTERM, handler);
        signal(SIGINT, handler);
    }
}

pub fn termination_requested() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { getuid() }
}

/// Drops to `uid`/`gid` with `gid` as the only supplementary group. Order matters:
/// groups and gid must change while we still are root.
pub fn drop_privileges(uid: u32, gid: u32) -> std::io::Result<()> {
    let check = |rc: i32| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls; the group list pointer is valid for one element.
    unsafe {
        check(setgroups(1, &gid))?;
        check(setgid(gid))?;
        check(setuid(uid))?;
        // Paranoia: a successful drop cannot be undone.
        if uid != 0 && setuid(0) == 0 {
            return Err(std::io::Error::other("privilege drop was reversible"));
        }
    }
    Ok(())
}
