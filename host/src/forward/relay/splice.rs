//! Zero-copy relay between two TCP sockets: splice(2) moves each direction
//! socket → pipe → socket inside the kernel (page references, no copy into
//! or out of user space), driven by tokio's readiness so one task serves
//! both directions of a connection.
//!
//! Semantics match `tokio::io::copy_bidirectional`, with two refinements:
//! - EOF on one side is forwarded as `shutdown(Write)` on the other, and
//!   the opposite direction keeps flowing (half-close).
//! - A failed *write* ends only its own direction: a server that answers
//!   and closes while the client is still sending (EPIPE towards the
//!   server) still gets its answer delivered. A failed *read* (RST from a
//!   peer) ends the whole connection.
//!
//! A direction whose first splice is refused (a socket type without splice
//! support) or that cannot get a pipe (fd limit) falls back to copying
//! through a user-space buffer, still on the same readiness loop.
//!
//! splice(2) into a socket whose peer is gone can raise SIGPIPE; Rust's
//! runtime ignores SIGPIPE, so it surfaces as `EPIPE` here.

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::Shutdown;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::{Direction, Meter};

/// Capacity asked for each direction's pipe: the most one splice moves.
/// 1 MiB edged out 64 KiB, 256 KiB and 4 MiB on this box, within the noise
/// (docs/benchmarks.md, Forward). Pipe pages are only held while bytes are
/// in flight, but the size counts against the user's pipe budget
/// (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default, ~32 connections
/// for a non-root user); beyond it, or above /proc/sys/fs/pipe-max-size,
/// `F_SETPIPE_SZ` fails and the pipe keeps its default capacity.
pub(super) const PIPE_SIZE: usize = 1024 * 1024;
/// User-space buffer of a direction that fell back to copying.
const COPY_BUFFER: usize = 64 * 1024;
/// The pipe ends are non-blocking already; the flag also covers the socket
/// end on kernels that look only at the flags.
const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

/// How a direction moved its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    Splice,
    Copy,
}

/// Why a direction stopped early.
#[derive(Debug)]
enum Failure {
    /// Reading from the source failed (reset): the connection is dead.
    Read(io::Error),
    /// Writing to the destination failed; the other direction may go on.
    Write(io::Error),
    /// The very first splice was refused before any byte moved.
    Unsupported,
}

/// One direction's end.
#[derive(Debug)]
struct Done {
    path: Path,
    failure: Option<Failure>,
}

/// Relays `client` ⇄ `upstream` until both directions have ended (EOF
/// forwarded, or a write failed) or a read failed. Bytes are counted on
/// `meter` as they are delivered. The error is the first failure, if any.
pub(super) async fn relay_tcp(
    client: &TcpStream,
    upstream: &TcpStream,
    meter: &Meter,
) -> io::Result<()> {
    relay_paths(client, upstream, meter, Path::Splice).await.0
}

/// [`relay_tcp`], trying `path` first (tests force the copy path) and
/// telling which path each direction took.
async fn relay_paths(
    client: &TcpStream,
    upstream: &TcpStream,
    meter: &Meter,
    path: Path,
) -> (io::Result<()>, [Option<Path>; 2]) {
    let up = pump(client, upstream, meter, Direction::ToSandbox, path);
    let down = pump(upstream, client, meter, Direction::ToClient, path);
    tokio::pin!(up, down);
    let mut ended: [Option<Done>; 2] = [None, None];
    while ended.iter().any(Option::is_none) {
        let (slot, done) = tokio::select! {
            done = &mut up, if ended[0].is_none() => (0, done),
            done = &mut down, if ended[1].is_none() => (1, done),
        };
        let fatal = matches!(done.failure, Some(Failure::Read(_)));
        ended[slot] = Some(done);
        if fatal {
            break;
        }
    }
    let paths = [
        ended[0].as_ref().map(|d| d.path),
        ended[1].as_ref().map(|d| d.path),
    ];
    let error = ended.into_iter().flatten().find_map(|d| match d.failure {
        Some(Failure::Read(e) | Failure::Write(e)) => Some(e),
        Some(Failure::Unsupported) | None => None,
    });
    (error.map_or(Ok(()), Err), paths)
}

/// Moves `from` → `to` until EOF (then shuts `to` down for writing) or a
/// failure.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    meter: &Meter,
    direction: Direction,
    path: Path,
) -> Done {
    if let (Path::Splice, Ok(pipe)) = (path, Pipe::new()) {
        match splice_loop(from, to, &pipe, meter, direction).await {
            Err(Failure::Unsupported) => {
                tracing::debug!("forward: splice refused; copying {direction:?} instead");
            }
            result => return finish(to, Path::Splice, result),
        }
    }
    let result = copy_loop(from, to, meter, direction).await;
    finish(to, Path::Copy, result)
}

fn finish(to: &TcpStream, path: Path, result: Result<(), Failure>) -> Done {
    let failure = match result {
        // EOF from the source: pass the half-close on. ENOTCONN means the
        // destination is already fully gone; nothing left to tell it.
        Ok(()) => match rustix::net::shutdown(to, Shutdown::Write) {
            Ok(()) | Err(Errno::NOTCONN) => None,
            Err(e) => Some(Failure::Write(e.into())),
        },
        Err(f) => Some(f),
    };
    Done { path, failure }
}

/// A pipe of one direction; both ends non-blocking.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| rustix::pipe::fcntl_getpipe_size(&write))?;
        Ok(Self {
            read,
            write,
            capacity,
        })
    }
}

async fn splice_loop(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    meter: &Meter,
    direction: Direction,
) -> Result<(), Failure> {
    let mut first = true;
    loop {
        // The pipe is empty here, so EAGAIN can only come from the socket:
        // that is what lets `async_io` wait on the socket's readiness.
        let filled = from
            .async_io(Interest::READABLE, || {
                rustix::pipe::splice(from, None, &pipe.write, None, pipe.capacity, FLAGS)
                    .map_err(io::Error::from)
            })
            .await;
        let mut left = match filled {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if first && refused(&e) => return Err(Failure::Unsupported),
            Err(e) => return Err(Failure::Read(e)),
        };
        first = false;
        // Drain completely before reading again, for the same reason: the
        // pipe is not empty, so EAGAIN here is the destination socket's.
        while left > 0 {
            let moved = to
                .async_io(Interest::WRITABLE, || {
                    rustix::pipe::splice(&pipe.read, None, to, None, left, FLAGS)
                        .map_err(io::Error::from)
                })
                .await
                .map_err(Failure::Write)?;
            if moved == 0 {
                return Err(Failure::Write(io::ErrorKind::WriteZero.into()));
            }
            left -= moved;
            meter.add(direction, moved);
        }
    }
}

/// splice(2) does not support this pair of files.
fn refused(e: &io::Error) -> bool {
    [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

async fn copy_loop(
    from: &TcpStream,
    to: &TcpStream,
    meter: &Meter,
    direction: Direction,
) -> Result<(), Failure> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from
            .async_io(Interest::READABLE, || {
                rustix::io::read(from, &mut buf[..]).map_err(io::Error::from)
            })
            .await
            .map_err(Failure::Read)?;
        if n == 0 {
            return Ok(());
        }
        let mut sent = 0;
        while sent < n {
            let moved = to
                .async_io(Interest::WRITABLE, || {
                    rustix::io::write(to, &buf[sent..n]).map_err(io::Error::from)
                })
                .await
                .map_err(Failure::Write)?;
            if moved == 0 {
                return Err(Failure::Write(io::ErrorKind::WriteZero.into()));
            }
            sent += moved;
            meter.add(direction, moved);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::forward::relay::ForwardStats;

    /// Hang guard for a whole test (not a timing assertion): every step
    /// below ends on EOF or an error, this only turns a bug into a failure.
    const GUARD: Duration = Duration::from_secs(60);

    type RelayEnd = (io::Result<()>, [Option<Path>; 2]);

    /// A client and a server, both on loopback, with the relay between.
    struct Rig {
        client: TcpStream,
        server: TcpStream,
        relay: JoinHandle<RelayEnd>,
        meter: Arc<Meter>,
        stats: Arc<ForwardStats>,
    }

    async fn rig(path: Path) -> Rig {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(front.local_addr().unwrap())
            .await
            .unwrap();
        let (relay_client, _) = front.accept().await.unwrap();
        let relay_upstream = TcpStream::connect(back.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = back.accept().await.unwrap();
        let stats = Arc::new(ForwardStats::default());
        let meter = Arc::new(Meter::new(stats.clone()));
        let m = meter.clone();
        let relay =
            tokio::spawn(
                async move { relay_paths(&relay_client, &relay_upstream, &m, path).await },
            );
        Rig {
            client,
            server,
            relay,
            meter,
            stats,
        }
    }

    /// Deterministic bytes that differ at every offset a bug could shift.
    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Writes `out` then half-closes, while reading everything the peer
    /// sends until its EOF.
    async fn exchange(stream: TcpStream, out: Vec<u8>) -> Vec<u8> {
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            wr.write_all(&out).await.unwrap();
            wr.shutdown().await.unwrap();
            wr
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        drop(writer.await.unwrap());
        got
    }

    async fn both_ways(path: Path, up_len: usize, down_len: usize) {
        let r = rig(path).await;
        let up = payload(up_len, 1 + up_len as u64);
        let down = payload(down_len, 7 + down_len as u64);
        let client = tokio::spawn(exchange(r.client, up.clone()));
        let server = tokio::spawn(exchange(r.server, down.clone()));
        let at_server = server.await.unwrap();
        let at_client = client.await.unwrap();
        assert!(at_server == up, "{path:?}: {up_len} B towards the server");
        assert!(
            at_client == down,
            "{path:?}: {down_len} B towards the client"
        );
        let (result, paths) = r.relay.await.unwrap();
        result.unwrap();
        assert_eq!(paths, [Some(path), Some(path)]);
        assert_eq!(r.meter.to_sandbox.load(Ordering::Relaxed), up_len as u64);
        assert_eq!(r.meter.to_client.load(Ordering::Relaxed), down_len as u64);
        assert_eq!(
            r.stats.bytes.load(Ordering::Relaxed),
            (up_len + down_len) as u64
        );
        let carried = u64::from(up_len + down_len > 0);
        assert_eq!(r.stats.connections.load(Ordering::Relaxed), carried);
    }

    const SIZES: [(usize, usize); 5] = [
        (0, 0),
        (1, 3),
        (64, 70_000),
        (3 * 1024 * 1024 + 17, 5),
        (9 * 1024 * 1024 + 1, 6 * 1024 * 1024 + 3),
    ];

    #[tokio::test]
    async fn splice_is_byte_exact_both_ways_small_and_large() {
        tokio::time::timeout(GUARD, async {
            for (up, down) in SIZES {
                both_ways(Path::Splice, up, down).await;
            }
        })
        .await
        .expect("relay hung");
    }

    #[tokio::test]
    async fn copy_fallback_is_byte_exact_both_ways_small_and_large() {
        tokio::time::timeout(GUARD, async {
            for (up, down) in SIZES {
                both_ways(Path::Copy, up, down).await;
            }
        })
        .await
        .expect("relay hung");
    }

    /// The client sends a request and shuts down its write side; the server
    /// sees EOF only through the forwarded FIN, then answers, and the
    /// client still receives the answer on its half-open connection.
    #[tokio::test]
    async fn half_close_is_forwarded_and_the_reply_still_arrives() {
        for path in [Path::Splice, Path::Copy] {
            tokio::time::timeout(GUARD, async {
                let mut r = rig(path).await;
                let request = payload(200_000, 3);
                r.client.write_all(&request).await.unwrap();
                r.client.shutdown().await.unwrap();
                let mut got = Vec::new();
                r.server.read_to_end(&mut got).await.unwrap();
                assert!(got == request, "{path:?}: request intact up to the FIN");
                let reply = payload(300_000, 4);
                r.server.write_all(&reply).await.unwrap();
                r.server.shutdown().await.unwrap();
                let mut back = Vec::new();
                r.client.read_to_end(&mut back).await.unwrap();
                assert!(back == reply, "{path:?}: reply after the half-close");
                let (result, paths) = r.relay.await.unwrap();
                result.unwrap();
                assert_eq!(paths, [Some(path), Some(path)]);
                assert_eq!(r.stats.bytes.load(Ordering::Relaxed), 500_000);
            })
            .await
            .expect("relay hung");
        }
    }

    /// The server answers and closes without waiting for the client: the
    /// client gets the whole answer and EOF, can still send (into a closed
    /// server), and the relay ends once the client is done.
    #[tokio::test]
    async fn server_closing_first_delivers_its_reply_and_ends_the_relay() {
        for path in [Path::Splice, Path::Copy] {
            tokio::time::timeout(GUARD, async {
                let mut r = rig(path).await;
                let reply = payload(1024 * 1024 + 5, 5);
                r.server.write_all(&reply).await.unwrap();
                drop(r.server);
                let mut back = Vec::new();
                r.client.read_to_end(&mut back).await.unwrap();
                assert!(back == reply, "{path:?}: reply before the server's close");
                // Late bytes towards a closed server: delivered to the relay
                // (or refused), never a hang.
                let _ = r.client.write_all(b"late").await;
                let _ = r.client.shutdown().await;
                let (result, _) = r.relay.await.unwrap();
                if let Err(e) = result {
                    assert!(
                        matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ),
                        "{path:?}: unexpected relay error {e}"
                    );
                }
                assert_eq!(
                    r.meter.to_client.load(Ordering::Relaxed),
                    reply.len() as u64
                );
            })
            .await
            .expect("relay hung");
        }
    }

    /// A reset from the server ends the whole relay with ECONNRESET and
    /// closes the client's side, even though the client never sends.
    #[tokio::test]
    async fn reset_by_the_server_ends_the_relay() {
        for path in [Path::Splice, Path::Copy] {
            tokio::time::timeout(GUARD, async {
                let mut r = rig(path).await;
                r.server.set_zero_linger().unwrap();
                r.server.write_all(b"partial").await.unwrap();
                let mut first = [0u8; 7];
                r.client.read_exact(&mut first).await.unwrap();
                assert_eq!(&first, b"partial");
                drop(r.server);
                let (result, _) = r.relay.await.unwrap();
                let e = result.expect_err("a reset is an error");
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{path:?}");
                // The relay dropped its sockets: the client sees the end.
                let mut rest = Vec::new();
                let end = r.client.read_to_end(&mut rest).await;
                assert!(rest.is_empty(), "{path:?}: nothing after the reset");
                if let Err(e) = end {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{path:?}");
                }
            })
            .await
            .expect("relay hung");
        }
    }

    #[test]
    fn pipes_get_the_bounded_capacity_or_the_default() {
        let pipe = Pipe::new().unwrap();
        assert!(pipe.capacity >= 4096, "{}", pipe.capacity);
        assert!(pipe.capacity <= PIPE_SIZE, "{}", pipe.capacity);
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(&pipe.read).unwrap(),
            pipe.capacity
        );
    }
}
