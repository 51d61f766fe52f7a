//! Whether a TCP port has a listener in a sandbox's network namespace, asked
//! of the kernel through `NETLINK_SOCK_DIAG`.
//!
//! Reading `/proc/<pid>/net/tcp{,6}` makes the kernel walk the host's whole
//! TCP hash table (every namespace's sockets) and format every socket of the
//! namespace as text. sock_diag instead answers one exact question: the
//! socket a connection from nowhere (`0.0.0.0:0`) to `127.0.0.1:PORT` (then
//! `[::1]:PORT`) would reach, looked up in the kernel's hash tables like an
//! incoming SYN: two or three buckets, a few microseconds, whatever the host
//! holds. That is the question the forward needs answered, since it connects
//! to the sandbox's loopback. (A LISTEN-only *dump* filtered by port, the
//! first version, visits every bucket of the host-wide listening hash:
//! ~30 µs alone, ~150 µs per check with 200 sandboxes; docs/benchmarks.md.)
//!
//! A netlink socket answers for the network namespace it was created in, so
//! [`ListenProbe`] creates its socket once, on a short-lived thread that
//! entered the sandbox's namespace, and then queries from any thread.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// How long one reply may take. The kernel answers a request synchronously
/// from the socket's own `recv`, so this only bounds a kernel that is itself
/// stuck; it keeps a liveness tick from hanging on it.
const RECV_TIMEOUT: Duration = Duration::from_secs(1);

/// Receive buffer: an answer is one `inet_diag_msg` (~90 bytes) or an
/// error carrying our request back (~90 bytes).
const RECV_BUF: usize = 8 * 1024;

// uapi constants libc does not carry (linux/sock_diag.h, net/tcp_states.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_LISTEN: u8 = 10;

const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, sockid.
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// `INET_DIAG_NOCOOKIE`: match whatever socket the lookup finds (a zero
/// cookie would have to equal the socket's own).
const NO_COOKIE: [u8; 8] = [0xff; 8];
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid, expires,
/// rqueue, wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;
/// A request is one header and one `inet_diag_req_v2`.
pub(crate) const REQUEST_LEN: usize = NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN;

/// Why a [`ListenProbe`] could not be made or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ListenDiagError {
    #[error("{0} is gone: the sandbox stopped")]
    NamespaceGone(PathBuf),
    #[error("cannot enter {path}: {source} (entering a network namespace needs root)")]
    Denied {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no sock_diag reply within {0:?}")]
    Timeout(Duration),
    #[error("the kernel refused the sock_diag request: {0}")]
    Kernel(std::io::Error),
    #[error("malformed sock_diag reply: {0}")]
    Malformed(&'static str),
}

fn io(what: &'static str) -> impl FnOnce(Errno) -> ListenDiagError {
    move |e| ListenDiagError::Io {
        what,
        source: e.into(),
    }
}

/// A `NETLINK_SOCK_DIAG` socket of one network namespace.
///
/// Queries take `&mut self`: an answer is read from the shared socket, and
/// two interleaved queries would read each other's.
#[derive(Debug)]
pub struct ListenProbe {
    fd: OwnedFd,
    seq: u32,
}

impl ListenProbe {
    /// A probe of the network namespace of process `pid` (a host pid).
    pub fn for_process(pid: u32) -> Result<Self, ListenDiagError> {
        Self::open(Path::new(&format!("/proc/{pid}/ns/net")))
    }

    /// A probe of the network namespace at `ns_path` (an `ns/net` link or a
    /// bind mount of one).
    pub fn open(ns_path: &Path) -> Result<Self, ListenDiagError> {
        let fd = in_netns(ns_path, diag_socket)?;
        Ok(Self { fd, seq: 0 })
    }

    /// Whether a TCP listener takes connections to loopback `port`:
    /// `127.0.0.1` (which also finds `0.0.0.0` and dual-stack `[::]`
    /// listeners), else `[::1]`.
    pub fn listening(&mut self, port: u16) -> Result<bool, ListenDiagError> {
        for family in [AddressFamily::INET, AddressFamily::INET6] {
            if self.lookup(family.as_raw() as u8, port)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One exact lookup: the kernel answers with the socket or ENOENT.
    fn lookup(&mut self, family: u8, port: u16) -> Result<bool, ListenDiagError> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(family, port, self.seq);
        rustix::net::sendto(
            &self.fd,
            &req,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(io("send sock_diag request"))?;
        let mut buf = [0u8; RECV_BUF];
        let mut listening = false;
        loop {
            let (n, full) = match rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::TRUNC) {
                Ok(got) => got,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Err(ListenDiagError::Timeout(RECV_TIMEOUT)),
                Err(e) => return Err(io("receive sock_diag reply")(e)),
            };
            if full > n {
                return Err(ListenDiagError::Malformed("reply larger than the buffer"));
            }
            let replies = parse_replies(&buf[..n], self.seq, port)?;
            listening |= replies.listening;
            if replies.done {
                return Ok(listening);
            }
        }
    }
}

/// Runs `f` on a fresh OS thread inside the network namespace at `ns_path`.
///
/// setns is per thread: a runtime worker that entered a sandbox's namespace
/// would open every later socket there, so only this throwaway thread does.
fn in_netns<T: Send + 'static>(
    ns_path: &Path,
    f: fn() -> Result<T, ListenDiagError>,
) -> Result<T, ListenDiagError> {
    let ns = File::open(ns_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ListenDiagError::NamespaceGone(ns_path.to_path_buf()),
        std::io::ErrorKind::PermissionDenied => ListenDiagError::Denied {
            path: ns_path.to_path_buf(),
            source: e,
        },
        _ => ListenDiagError::Io {
            what: "open the network namespace",
            source: e,
        },
    })?;
    let path = ns_path.to_path_buf();
    std::thread::Builder::new()
        .name("runner-netns-diag".into())
        .spawn(move || {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| match e {
                Errno::PERM => ListenDiagError::Denied {
                    path,
                    source: e.into(),
                },
                e => io("setns into the network namespace")(e),
            })?;
            f()
        })
        .map_err(|e| ListenDiagError::Io {
            what: "start netns thread",
            source: e,
        })?
        .join()
        .map_err(|_| ListenDiagError::Io {
            what: "netns thread",
            source: std::io::Error::other("panicked"),
        })?
}

fn diag_socket() -> Result<OwnedFd, ListenDiagError> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )
    .map_err(io("create NETLINK_SOCK_DIAG socket"))?;
    sockopt::set_socket_timeout(&fd, Timeout::Recv, Some(RECV_TIMEOUT))
        .map_err(io("set SO_RCVTIMEO"))?;
    Ok(fd)
}

/// A `SOCK_DIAG_BY_FAMILY` exact request (no `NLM_F_DUMP`): the TCP socket
/// of `family` that a connection from the unspecified address, port 0, to
/// loopback `port` would be delivered to.
pub(crate) fn request(family: u8, port: u16, seq: u32) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    // struct nlmsghdr (host byte order).
    b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our autobound port id.
    // struct inet_diag_req_v2.
    b[16] = family;
    b[17] = libc::IPPROTO_TCP as u8;
    // idiag_ext 0: no extensions, only the fixed inet_diag_msg.
    b[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    // struct inet_diag_sockid, network byte order: local port and address;
    // the remote side stays unspecified, so no connection can match and
    // the lookup falls through to the listeners.
    b[24..26].copy_from_slice(&port.to_be_bytes());
    if family == libc::AF_INET as u8 {
        b[28..32].copy_from_slice(&[127, 0, 0, 1]);
    } else {
        b[43] = 1; // ::1
    }
    b[64..72].copy_from_slice(&NO_COOKIE);
    b
}

/// What one reply datagram said.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replies {
    /// The socket found is a listener on the asked port.
    pub listening: bool,
    /// The answer came (the socket, ENOENT, or the end of a dump).
    pub done: bool,
}

/// Parses the netlink messages of one reply datagram to request `seq` about
/// `port`. Messages of other sequence numbers (an answer that came after its
/// request timed out) are skipped.
pub(crate) fn parse_replies(buf: &[u8], seq: u32, port: u16) -> Result<Replies, ListenDiagError> {
    let mut out = Replies::default();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < NLMSG_HDRLEN {
            return Err(ListenDiagError::Malformed("truncated netlink header"));
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(ListenDiagError::Malformed("netlink length out of bounds"));
        }
        let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
        let msg_seq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
        let payload = &rest[NLMSG_HDRLEN..len];
        // Messages are padded to 4 bytes; the last one may not be.
        rest = &rest[align4(len).min(rest.len())..];
        if msg_seq != seq {
            continue;
        }
        match kind {
            k if k == libc::NLMSG_DONE as u16 => {
                // A dump's DONE carries its status; negative is an errno.
                if let Some(status) = payload.get(0..4) {
                    let status = i32::from_ne_bytes(status.try_into().expect("4 bytes"));
                    if status < 0 {
                        return Err(kernel_error(status));
                    }
                }
                out.done = true;
                return Ok(out);
            }
            k if k == libc::NLMSG_ERROR as u16 => {
                let status = payload
                    .get(0..4)
                    .ok_or(ListenDiagError::Malformed("truncated NLMSG_ERROR"))?;
                let status = i32::from_ne_bytes(status.try_into().expect("4 bytes"));
                // ENOENT: no socket would take the connection. 0 would be an
                // acknowledgement, which a request without NLM_F_ACK does
                // not get; either way nothing listens.
                if status != 0 && status != -libc::ENOENT {
                    return Err(kernel_error(status));
                }
                out.done = true;
                return Ok(out);
            }
            SOCK_DIAG_BY_FAMILY => {
                if payload.len() < INET_DIAG_MSG_LEN {
                    return Err(ListenDiagError::Malformed("truncated inet_diag_msg"));
                }
                let state = payload[1];
                let sport = u16::from_be_bytes([payload[4], payload[5]]);
                // Checked, not assumed: only a listener on the port counts.
                out.listening |= state == TCP_LISTEN && sport == port;
                out.done = true;
                return Ok(out);
            }
            // NLMSG_NOOP, NLMSG_OVERRUN and anything newer: nothing to learn.
            _ => {}
        }
    }
    Ok(out)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn kernel_error(status: i32) -> ListenDiagError {
    ListenDiagError::Kernel(std::io::Error::from_raw_os_error(status.saturating_neg()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AF_INET: u8 = libc::AF_INET as u8;
    const AF_INET6: u8 = libc::AF_INET6 as u8;

    fn header(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&len.to_ne_bytes());
        h.extend_from_slice(&kind.to_ne_bytes());
        h.extend_from_slice(&flags.to_ne_bytes());
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&4242u32.to_ne_bytes());
        h
    }

    /// One `inet_diag_msg` as the kernel sends it for `family`/`state`/`sport`.
    fn diag_msg(seq: u32, family: u8, state: u8, sport: u16) -> Vec<u8> {
        let mut m = header((NLMSG_HDRLEN + INET_DIAG_MSG_LEN) as u32, 20, 0x2, seq);
        let mut body = [0u8; INET_DIAG_MSG_LEN];
        body[0] = family;
        body[1] = state;
        body[4..6].copy_from_slice(&sport.to_be_bytes());
        body[8..12].copy_from_slice(&[127, 0, 0, 1]);
        body[68..72].copy_from_slice(&123456u32.to_ne_bytes()); // inode
        m.extend_from_slice(&body);
        m
    }

    fn done(seq: u32, status: i32) -> Vec<u8> {
        let mut m = header(20, libc::NLMSG_DONE as u16, 0x2, seq);
        m.extend_from_slice(&status.to_ne_bytes());
        m
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        // The error code, then the offending request's header.
        let mut m = header(36, libc::NLMSG_ERROR as u16, 0, seq);
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&header(REQUEST_LEN as u32, 20, 0x301, seq));
        m
    }

    fn header_and_family(family: u8) -> Vec<u8> {
        let mut want = Vec::new();
        want.extend_from_slice(&72u32.to_ne_bytes()); // nlmsg_len
        want.extend_from_slice(&20u16.to_ne_bytes()); // SOCK_DIAG_BY_FAMILY
        want.extend_from_slice(&0x1u16.to_ne_bytes()); // NLM_F_REQUEST, no dump
        want.extend_from_slice(&7u32.to_ne_bytes()); // nlmsg_seq
        want.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        want.extend_from_slice(&[family, 6, 0, 0]); // family, IPPROTO_TCP, no ext, pad
        want.extend_from_slice(&(1u32 << 10).to_ne_bytes()); // TCPF_LISTEN
        want.extend_from_slice(&[0x49, 0x65, 0, 0]); // sport 18789, dport 0 (big endian)
        want
    }

    #[test]
    fn request_looks_up_the_loopback_port_from_nowhere() {
        let mut want = header_and_family(AF_INET);
        want.extend_from_slice(&[127, 0, 0, 1]); // idiag_src 127.0.0.1
        want.extend_from_slice(&[0u8; 12 + 16 + 4]); // rest of src, dst, ifindex
        want.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
        assert_eq!(request(AF_INET, 18789, 7).as_slice(), want.as_slice());

        let mut want = header_and_family(AF_INET6);
        want.extend_from_slice(&[0u8; 15]);
        want.push(1); // idiag_src ::1
        want.extend_from_slice(&[0u8; 16 + 4]); // dst, ifindex
        want.extend_from_slice(&[0xff; 8]);
        assert_eq!(request(AF_INET6, 18789, 7).as_slice(), want.as_slice());
    }

    #[test]
    fn the_listener_found_is_the_answer() {
        let buf = diag_msg(3, AF_INET, TCP_LISTEN, 8080);
        assert_eq!(
            parse_replies(&buf, 3, 8080).unwrap(),
            Replies {
                listening: true,
                done: true
            }
        );
    }

    #[test]
    fn enoent_is_not_listening() {
        assert_eq!(
            parse_replies(&error(3, libc::ENOENT), 3, 8080).unwrap(),
            Replies {
                listening: false,
                done: true
            }
        );
    }

    #[test]
    fn other_ports_states_and_late_answers_do_not_count() {
        // Another port, or a connection on the port: answered, not listening.
        for (state, sport) in [(TCP_LISTEN, 8081), (1, 8080)] {
            assert_eq!(
                parse_replies(&diag_msg(3, AF_INET, state, sport), 3, 8080).unwrap(),
                Replies {
                    listening: false,
                    done: true
                }
            );
        }
        // The answer to an earlier request that timed out is skipped.
        let late = diag_msg(2, AF_INET, TCP_LISTEN, 8080);
        assert_eq!(parse_replies(&late, 3, 8080).unwrap(), Replies::default());
        assert!(
            !parse_replies(&error(2, libc::ENOENT), 3, 8080)
                .unwrap()
                .done
        );
        // Then this request's own answer, in the same datagram.
        let mut both = late;
        both.extend(diag_msg(3, AF_INET6, TCP_LISTEN, 8080));
        assert!(parse_replies(&both, 3, 8080).unwrap().listening);
    }

    #[test]
    fn kernel_errors_are_typed() {
        match parse_replies(&error(5, libc::EBUSY), 5, 1) {
            Err(ListenDiagError::Kernel(e)) => assert_eq!(e.raw_os_error(), Some(libc::EBUSY)),
            other => panic!("{other:?}"),
        }
        match parse_replies(&done(5, -libc::ENOENT), 5, 1) {
            Err(ListenDiagError::Kernel(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("{other:?}"),
        }
        // An acknowledgement is no error, and no listener.
        assert_eq!(
            parse_replies(&error(5, 0), 5, 1).unwrap(),
            Replies {
                listening: false,
                done: true
            }
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let whole = {
            let mut b = diag_msg(1, AF_INET, TCP_LISTEN, 80);
            b.extend(done(1, 0));
            b
        };
        // Every truncation of a valid datagram either parses or is an error.
        for cut in 0..whole.len() {
            let _ = parse_replies(&whole[..cut], 1, 80);
        }
        assert!(matches!(
            parse_replies(&whole[..10], 1, 80),
            Err(ListenDiagError::Malformed(_))
        ));
        let mut short = header(20, 20, 0, 1);
        short.extend_from_slice(&[0; 4]);
        assert!(matches!(
            parse_replies(&short, 1, 80),
            Err(ListenDiagError::Malformed(_))
        ));
        let mut huge = header(4096, 20, 0, 1);
        huge.extend_from_slice(&[0; 8]);
        assert!(matches!(
            parse_replies(&huge, 1, 80),
            Err(ListenDiagError::Malformed(_))
        ));
        let zero = header(0, 20, 0, 1);
        assert!(matches!(
            parse_replies(&zero, 1, 80),
            Err(ListenDiagError::Malformed(_))
        ));
    }
}
