//! Listening sockets of the sandbox's network namespace and connects made
//! from inside it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use super::parse::{parse_net_tcp, parse_socket_link};
use super::{ProcView, read_capped};
use crate::backend::{BackendError, Listener, ProcessId};

/// Upper bound on `/proc/<pid>/net/tcp{,6}` (~150 bytes per socket).
const MAX_NET_TABLE: usize = 16 * 1024 * 1024;
/// Upper bound on open fds inspected per process when mapping sockets.
const MAX_FDS_PER_PROCESS: usize = 65_536;

impl ProcView {
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
    // Forwards and HTTP probes exchange small request/response messages;
    // Nagle would hold a second small write until the first is acked.
    let _ = stream.set_nodelay(true);
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
