//! Who a host process is, and whether a forward record still describes it.
//!
//! A process is its pid *and* its start time (field 22 of `/proc/<pid>/stat`):
//! a bare pid may have been reused by anything since the record was written.
//! A detached forward is additionally recognised by its argv, which names the
//! sandbox and port it serves, so a record can never make us signal a process
//! that is not a `runner forward serve` for that port.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::backend::ProcessId;
use crate::backend::procfs::{self, ProcView};

use super::ForwardError;

/// Upper bound on one `/proc/<pid>/cmdline` we read.
const MAX_CMDLINE: u64 = 64 * 1024;
/// Upper bound on `/proc/<pid>/net/tcp{,6}` (~150 bytes per socket).
const MAX_NET_TABLE: u64 = 16 * 1024 * 1024;
/// Upper bound on fds inspected when checking that a process holds a socket.
const MAX_FDS: usize = 65_536;

/// What became of the process a record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Same pid, same start time, still running; its argv.
    Alive { cmdline: Vec<String> },
    /// No process with that pid.
    Gone,
    /// It exited and waits to be reaped: its identity is over.
    Zombie,
    /// The pid now belongs to a process started at another time.
    Reused { start_time: u64 },
}

/// A process holding a listening socket, as far as `/proc` lets us see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub id: ProcessId,
    pub cmdline: Vec<String>,
}

/// The arguments of a `runner forward serve` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServeArgv {
    pub backend: String,
    pub sandbox: String,
    pub host_port: u16,
    pub sandbox_port: u16,
    pub bind: IpAddr,
}

fn read_capped(path: &str, max: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(max)
        .read_to_end(&mut data)?;
    Ok(data)
}

fn stat_of(pid: u32) -> Option<procfs::StatLine> {
    let raw = read_capped(&format!("/proc/{pid}/stat"), 4096).ok()?;
    procfs::parse_stat(&String::from_utf8_lossy(&raw))
}

pub(crate) fn cmdline_of(pid: u32) -> Vec<String> {
    read_capped(&format!("/proc/{pid}/cmdline"), MAX_CMDLINE)
        .map(|raw| procfs::parse_cmdline(&raw))
        .unwrap_or_default()
}

/// Our own pid and start time, as a forward record states them.
pub(crate) fn own_identity() -> Result<ProcessId, ForwardError> {
    let raw =
        read_capped("/proc/self/stat", 4096).map_err(|e| ForwardError::Identity(e.to_string()))?;
    let stat = procfs::parse_stat(&String::from_utf8_lossy(&raw))
        .ok_or_else(|| ForwardError::Identity("unparsable /proc/self/stat".into()))?;
    Ok(ProcessId {
        pid: std::process::id(),
        start_time: stat.start_time,
    })
}

pub(crate) fn liveness(id: ProcessId) -> Liveness {
    match stat_of(id.pid) {
        None => Liveness::Gone,
        Some(s) if s.start_time != id.start_time => Liveness::Reused {
            start_time: s.start_time,
        },
        Some(s) if s.state == "Z" || s.state == "X" => Liveness::Zombie,
        Some(_) => Liveness::Alive {
            cmdline: cmdline_of(id.pid),
        },
    }
}

/// Parses the argv of a `runner [--log X] forward serve ...` process. Any
/// other argv (including another runner subcommand) is `None`.
pub(crate) fn parse_serve_argv(argv: &[String]) -> Option<ServeArgv> {
    let exe = argv.first()?;
    // The binary may be installed under another name, but never one that
    // does not mention runner: that keeps look-alike argv of other tools out.
    let base = exe.rsplit('/').next().unwrap_or(exe);
    if !base.contains("runner") {
        return None;
    }
    let mut i = 1;
    // Global options clap accepts before the subcommand.
    while let Some(arg) = argv.get(i) {
        if arg == "--log" {
            i += 2;
        } else if arg.starts_with("--log=") {
            i += 1;
        } else {
            break;
        }
    }
    if argv.get(i).map(String::as_str) != Some("forward")
        || argv.get(i + 1).map(String::as_str) != Some("serve")
    {
        return None;
    }
    let (mut backend, mut sandbox, mut host_port, mut sandbox_port) = (None, None, None, None);
    let mut bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut rest = argv[i + 2..].iter();
    while let Some(arg) = rest.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let known = matches!(
            key,
            "--backend" | "--sandbox" | "--host-port" | "--sandbox-port" | "--bind"
        );
        if !known {
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => rest.next()?.clone(),
        };
        match key {
            "--backend" => backend = Some(value),
            "--sandbox" => sandbox = Some(value),
            "--host-port" => host_port = Some(value.parse().ok()?),
            "--sandbox-port" => sandbox_port = Some(value.parse().ok()?),
            _ => bind = value.parse().ok()?,
        }
    }
    Some(ServeArgv {
        backend: backend?,
        sandbox: sandbox?,
        host_port: host_port?,
        sandbox_port: sandbox_port?,
        bind,
    })
}

/// Does a listening socket on `row` block (or serve) `bind:port`? A wildcard
/// listener covers every address of its family and, for `::`, IPv4 too.
fn covers(row: IpAddr, bind: IpAddr) -> bool {
    row == bind || row.is_unspecified() || bind.is_unspecified()
}

/// Inodes of the listening sockets on `port` that cover `bind`, read from
/// the network namespace of `pid` (`self` for ours).
fn listening_inodes(pid: &str, bind: IpAddr, port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        if let Ok(text) = read_capped(&format!("/proc/{pid}/net/{file}"), MAX_NET_TABLE) {
            out.extend(
                procfs::parse_net_tcp(&String::from_utf8_lossy(&text), v6)
                    .into_iter()
                    .filter(|r| r.port == port && covers(r.addr, bind))
                    .map(|r| r.inode),
            );
        }
    }
    out
}

/// Whether process `pid` holds the listening socket of `bind:port`. Used for
/// in-process records, whose argv (`runner watch`) names no port.
pub(crate) fn holds_listener(pid: u32, bind: IpAddr, port: u16) -> bool {
    let inodes = listening_inodes(&pid.to_string(), bind, port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().take(MAX_FDS).any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| procfs::parse_socket_link(&t.to_string_lossy()))
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

/// The process listening on `bind:port` in our network namespace, when it
/// is visible to us (another user's processes are not, unless we are root).
/// Scans every process's fds: blocking and comparatively slow, so callers
/// only ask when something foreign answers.
pub(crate) fn listener_owner(bind: IpAddr, port: u16) -> Option<Owner> {
    let view = ProcView::for_self().ok()?;
    let listeners = view.listeners().ok()?;
    let id = listeners
        .iter()
        .filter(|l| l.port == port)
        .filter(|l| l.address.parse::<IpAddr>().is_ok_and(|a| covers(a, bind)))
        .find_map(|l| l.owner)?;
    Some(Owner {
        id,
        cmdline: cmdline_of(id.pid),
    })
}

/// Result of a signal sent by identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signalled {
    Sent,
    /// The identity no longer exists; nothing was sent.
    Gone,
    /// The process exists but is not what the caller may signal.
    Refused(String),
}

/// Sends `signal` to `id` only if it is still that process and `verify`
/// accepts its argv. The process is pinned with a pidfd *before* its start
/// time and argv are checked, so a pid reused in between can never receive
/// the signal (the pidfd would name the old, dead process: ESRCH).
pub(crate) fn signal_identity(
    id: ProcessId,
    signal: Signal,
    verify: &(dyn Fn(&[String]) -> Result<(), String> + Sync),
) -> Result<Signalled, ForwardError> {
    let Some(pid) = Pid::from_raw(id.pid as i32) else {
        return Ok(Signalled::Gone);
    };
    let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(Signalled::Gone),
        Err(e) => {
            return Err(ForwardError::Signal {
                pid: id.pid,
                cause: format!("pidfd_open: {e}"),
            });
        }
    };
    match liveness(id) {
        Liveness::Alive { cmdline } => {
            if let Err(why) = verify(&cmdline) {
                return Ok(Signalled::Refused(why));
            }
        }
        Liveness::Gone | Liveness::Zombie | Liveness::Reused { .. } => return Ok(Signalled::Gone),
    }
    match rustix::process::pidfd_send_signal(&pidfd, signal) {
        Ok(()) => Ok(Signalled::Sent),
        Err(Errno::SRCH) => Ok(Signalled::Gone),
        Err(e) => Err(ForwardError::Signal {
            pid: id.pid,
            cause: e.to_string(),
        }),
    }
}

/// How a termination by identity ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Terminated {
    /// Exited after SIGTERM.
    Term,
    /// Needed SIGKILL.
    Kill,
    /// Was already gone; nothing was sent.
    AlreadyGone,
    Refused(String),
}

/// Waits (bounded, polling with backoff) until `id` has exited.
async fn wait_exit(id: ProcessId, limit: Duration) -> bool {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        if !matches!(liveness(id), Liveness::Alive { .. }) {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(delay.min(limit.saturating_sub(started.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// SIGTERM by identity, wait up to `grace`, then SIGKILL by identity and
/// wait up to `kill_wait`. `verify` is re-checked before each signal.
pub(crate) async fn terminate(
    id: ProcessId,
    verify: &(dyn Fn(&[String]) -> Result<(), String> + Sync),
    grace: Duration,
    kill_wait: Duration,
) -> Result<Terminated, ForwardError> {
    match signal_identity(id, Signal::TERM, verify)? {
        Signalled::Gone => return Ok(Terminated::AlreadyGone),
        Signalled::Refused(why) => return Ok(Terminated::Refused(why)),
        Signalled::Sent => {}
    }
    if wait_exit(id, grace).await {
        return Ok(Terminated::Term);
    }
    tracing::warn!(
        pid = id.pid,
        "forward ignored SIGTERM for {grace:?}; sending SIGKILL"
    );
    match signal_identity(id, Signal::KILL, verify)? {
        Signalled::Gone => return Ok(Terminated::Term),
        Signalled::Refused(why) => return Ok(Terminated::Refused(why)),
        Signalled::Sent => {}
    }
    if wait_exit(id, kill_wait).await {
        Ok(Terminated::Kill)
    } else {
        Err(ForwardError::StillAlive { pid: id.pid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn serve_argv_is_recognised_with_either_flag_style() {
        let a = parse_serve_argv(&argv(
            "/usr/local/bin/runner forward serve --backend docker --sandbox sb1 --host-port 18789 --sandbox-port 18789 --bind 127.0.0.1",
        ))
        .unwrap();
        assert_eq!(a.sandbox, "sb1");
        assert_eq!((a.host_port, a.sandbox_port), (18789, 18789));
        assert_eq!(a.backend, "docker");
        let b = parse_serve_argv(&argv(
            "runner --log info forward serve --gone-grace 60s --backend=local --sandbox=x --host-port=1 --sandbox-port=2 --bind=::1",
        ))
        .unwrap();
        assert_eq!(b.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (b.sandbox.as_str(), b.host_port, b.sandbox_port),
            ("x", 1, 2)
        );
        // --bind defaults like the CLI does.
        let c = parse_serve_argv(&argv(
            "runner forward serve --backend docker --sandbox s --host-port 5 --sandbox-port 6",
        ))
        .unwrap();
        assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn other_argv_is_not_a_forward() {
        for text in [
            "runner watch --config x",
            "runner forward list",
            "sshd forward serve --backend docker --sandbox s --host-port 5 --sandbox-port 6",
            "runner forward serve --backend docker --sandbox s --host-port 5",
            "runner forward serve --backend docker --sandbox s --host-port x --sandbox-port 6",
            "runner forward serve --backend docker --sandbox s --host-port 5 --sandbox-port 6 --bind nope",
            "runner",
        ] {
            assert_eq!(parse_serve_argv(&argv(text)), None, "{text}");
        }
        assert_eq!(parse_serve_argv(&[]), None);
    }

    #[test]
    fn wildcard_listeners_cover_every_address() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(covers(lo, lo));
        assert!(covers(any, lo));
        assert!(covers(lo, any));
        assert!(!covers(other, lo));
    }

    #[test]
    fn own_identity_is_alive_and_a_wrong_start_time_is_reuse() {
        let me = own_identity().unwrap();
        assert!(matches!(liveness(me), Liveness::Alive { .. }));
        let wrong = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert_eq!(
            liveness(wrong),
            Liveness::Reused {
                start_time: me.start_time
            }
        );
        // Refused by verify: nothing is sent to ourselves.
        let r = signal_identity(
            me,
            Signal::TERM,
            &|_: &[String]| Err("not a forward".into()),
        )
        .unwrap();
        assert_eq!(r, Signalled::Refused("not a forward".into()));
        let r = signal_identity(wrong, Signal::TERM, &|_: &[String]| Ok(())).unwrap();
        assert_eq!(r, Signalled::Gone);
    }

    #[test]
    fn a_held_listener_is_found_with_its_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(holds_listener(std::process::id(), lo, port));
        let owner = listener_owner(lo, port).expect("our own listener is visible");
        assert_eq!(owner.id.pid, std::process::id());
        drop(l);
        assert!(!holds_listener(std::process::id(), lo, port));
    }
}
