//! The steps a sealed exec takes between `fork` and `exec`.
//!
//! This runs in the forked child of a multi-threaded process, so it may only
//! make raw system calls on data prepared beforehand: no allocation, no
//! locks, no `std` I/O. Every failure returns the errno, which `spawn`
//! reports as its own error.
//!
//! The child (A) enters the sandbox's mount and UTS namespaces, unshares
//! fresh mount, pid, network and IPC namespaces and forks B, which is pid 1
//! of the new pid namespace. A closes every descriptor but stdio, waits for
//! B and exits with its status; B makes its copy of the sandbox's mounts
//! private and read-only, mounts a /proc that shows only its own namespace
//! and a /dev with just the harmless devices, drops to the planned user
//! with no way back to privilege, and execs. So B and anything it starts can
//! read the sandbox's files but not write them, cannot see or signal the
//! sandbox's processes, and cannot reach its network.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

/// Everything the child needs, allocated before `fork`.
pub(crate) struct ChildPlan {
    pub mnt_ns: RawFd,
    pub uts_ns: RawFd,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub workdir: CString,
    paths: Paths,
}

struct Paths {
    root: CString,
    proc_: CString,
    dev: CString,
    proc_fs: CString,
    tmpfs: CString,
    dev_opts: CString,
    devices: Vec<(CString, libc::dev_t)>,
    links: Vec<(CString, CString)>,
}

impl ChildPlan {
    pub(crate) fn new(
        mnt_ns: RawFd,
        uts_ns: RawFd,
        uid: u32,
        gid: u32,
        groups: Vec<u32>,
        workdir: &str,
    ) -> io::Result<Self> {
        let c = |s: &str| CString::new(s).map_err(|_| io::Error::other(format!("NUL in {s:?}")));
        let devices = [
            ("null", 3),
            ("zero", 5),
            ("full", 7),
            ("random", 8),
            ("urandom", 9),
        ]
        .into_iter()
        .map(|(name, minor)| Ok((c(&format!("/dev/{name}"))?, libc::makedev(1, minor))))
        .collect::<io::Result<Vec<_>>>()?;
        let links = [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ]
        .into_iter()
        .map(|(target, link)| Ok((c(target)?, c(link)?)))
        .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            mnt_ns,
            uts_ns,
            uid,
            gid,
            groups,
            workdir: c(workdir)?,
            paths: Paths {
                root: c("/")?,
                proc_: c("/proc")?,
                dev: c("/dev")?,
                proc_fs: c("proc")?,
                tmpfs: c("tmpfs")?,
                dev_opts: c("mode=0755,size=64k")?,
                devices,
                links,
            },
        })
    }

    /// Runs in the forked child; returns only in B, ready to exec.
    ///
    /// # Safety
    /// Must be called between `fork` and `exec` (a `pre_exec` hook).
    pub(crate) unsafe fn enter(&self) -> io::Result<()> {
        // SAFETY (whole body): raw system calls on memory owned by `self`,
        // which outlives the call; nothing allocates.
        unsafe {
            // A dies with the thread that spawned it, so a killed runner
            // leaves no sealed process behind (B follows A, below).
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            check(libc::setns(self.mnt_ns, libc::CLONE_NEWNS))?;
            check(libc::setns(self.uts_ns, libc::CLONE_NEWUTS))?;
            check(libc::unshare(
                libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWIPC,
            ))?;
            let pid = libc::fork();
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid > 0 {
                wait_and_exit(pid);
            }
            self.seal_mounts()?;
            check(libc::chdir(self.workdir.as_ptr()))?;
            self.drop_privileges()?;
            // Set after the credential change, which clears it.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            Ok(())
        }
    }

    unsafe fn seal_mounts(&self) -> io::Result<()> {
        let p = &self.paths;
        // SAFETY: see `enter`.
        unsafe {
            // Our copies of the sandbox's mounts must not propagate back.
            check(libc::mount(
                std::ptr::null(),
                p.root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // A /proc of the new pid namespace: the sandbox's processes are
            // not in it, so none can be signalled, traced or opened.
            check(libc::mount(
                p.proc_fs.as_ptr(),
                p.proc_.as_ptr(),
                p.proc_fs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            set_attr(&p.root, libc::AT_RECURSIVE as u32, RDONLY | NOSUID | NODEV)?;
            // Device files stay writable on a read-only mount (a terminal,
            // a console), so /dev is replaced by one with only the
            // harmless devices, then made read-only itself.
            check(libc::mount(
                p.tmpfs.as_ptr(),
                p.dev.as_ptr(),
                p.tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                p.dev_opts.as_ptr().cast(),
            ))?;
            let old = libc::umask(0);
            for (path, dev) in &p.devices {
                check(libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, *dev))?;
            }
            libc::umask(old);
            for (target, link) in &p.links {
                check(libc::symlink(target.as_ptr(), link.as_ptr()))?;
            }
            set_attr(&p.dev, 0, RDONLY | NOSUID)?;
        }
        Ok(())
    }

    unsafe fn drop_privileges(&self) -> io::Result<()> {
        // SAFETY: see `enter`.
        unsafe {
            check(libc::setgroups(self.groups.len(), self.groups.as_ptr()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            // No set-uid binary or file capability can give root back.
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            if libc::geteuid() != self.uid || libc::getegid() != self.gid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        Ok(())
    }
}

const RDONLY: u64 = 0x1;
const NOSUID: u64 = 0x2;
const NODEV: u64 = 0x4;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

unsafe fn set_attr(path: &CString, flags: u32, attrs: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` and `attr` live across the call; the size is the
    // struct's.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A's whole life after the fork: keep only stdio (the exec-error pipe
/// `spawn` waits on must close when B execs, not when A exits), wait for B
/// and exit as B did.
unsafe fn wait_and_exit(pid: libc::pid_t) -> ! {
    // SAFETY: async-signal-safe calls only; `_exit` skips atexit handlers
    // that belong to the parent.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(125);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        libc::_exit(128 + libc::WTERMSIG(status));
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
