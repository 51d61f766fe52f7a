//! The data plane shared by detached and in-process forwards: accept on the
//! host listener, reach the sandbox port through the backend for *every*
//! connection (so a recreated container — new id, new network namespace —
//! is found again without restarting the forward), and move bytes both ways.
//!
//! When the sandbox side is a TCP socket (netns connect on a local engine,
//! local backend) the bytes never enter user space: [`splice`] moves them
//! socket → pipe → socket. Other streams (the exec relay) are copied.

mod splice;

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::backend::{Backend, Stream};

/// Upper bound for reaching the sandbox side of one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-direction copy buffer of the copy path (streams that are not
/// sockets, or kernels without splice for them). tokio's default (8 KiB)
/// makes 8x the read and write syscalls of 64 KiB on bulk transfers, which
/// measurably lowers throughput; larger buffers gained nothing
/// (docs/benchmarks.md, Forward).
const RELAY_BUFFER: usize = 64 * 1024;

/// Traffic counters of one forward. `bytes` counts both directions as they
/// flow (not when a connection closes), so a long-lived WebSocket shows up.
/// `connections` counts connections that carried at least one byte, so the
/// connect-and-close probes of `status` and `forward list` do not inflate it.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl ForwardStats {
    pub fn snapshot(&self) -> (u64, u64, u64, Option<String>) {
        (
            self.connections.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    fn note_error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        // The same failure repeats for every connection while the sandbox is
        // down; log it once per change instead of flooding the log file.
        if last.as_deref() != Some(message.as_str()) {
            tracing::warn!("forward: {message}");
        } else {
            tracing::debug!("forward: {message}");
        }
        *last = Some(message);
    }
}

/// Where each accepted connection goes.
pub(crate) struct Target {
    pub backend: Arc<dyn Backend>,
    pub sandbox: String,
    pub port: u16,
}

/// Accepts forever; each connection is relayed on its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    target: Arc<Target>,
    stats: Arc<ForwardStats>,
) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends are transient; back off briefly instead
                // of spinning on a listener that stays readable.
                stats.note_error(format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(relay(client, peer, target.clone(), stats.clone()));
    }
}

async fn relay(
    client: TcpStream,
    peer: std::net::SocketAddr,
    target: Arc<Target>,
    stats: Arc<ForwardStats>,
) {
    // Small request/response exchanges (health probes, WebSocket frames)
    // must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let upstream = match target
        .backend
        .connect_loopback(&target.sandbox, target.port, CONNECT_TIMEOUT)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            stats.note_error(format!(
                "{peer}: cannot reach {}:{}: {e}",
                target.sandbox, target.port
            ));
            return;
        }
    };
    let meter = Meter::new(stats.clone());
    let result = match into_tcp(upstream) {
        Ok(upstream) => {
            let _ = upstream.set_nodelay(true);
            splice::relay_tcp(&client, &upstream, &meter).await
        }
        Err(upstream) => copy(client, upstream, &meter).await,
    };
    tracing::debug!(
        "forward: {peer}: closed after {} B to the sandbox, {} B back",
        meter.to_sandbox.load(Ordering::Relaxed),
        meter.to_client.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        // A peer resetting mid-stream is ordinary for browsers; count it
        // but it is not worth more than debug in the log.
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                tracing::debug!("forward: {peer}: relay: {e}");
            }
            _ => stats.note_error(format!("{peer}: relay: {e}")),
        }
    }
}

/// The sandbox side as a plain TCP socket, if that is what the backend
/// returned (netns connect, local backend); otherwise the stream unchanged.
fn into_tcp(stream: Box<dyn Stream>) -> Result<TcpStream, Box<dyn Stream>> {
    // `as_ref` first: the `Box` itself is `Any` too, with its own type id.
    if !(stream.as_ref() as &dyn Any).is::<TcpStream>() {
        return Err(stream);
    }
    let any: Box<dyn Any> = stream;
    match any.downcast::<TcpStream>() {
        Ok(tcp) => Ok(*tcp),
        Err(_) => unreachable!("the type was checked just above"),
    }
}

/// The copy path, for sandbox streams that are not sockets.
async fn copy(client: TcpStream, mut upstream: Box<dyn Stream>, meter: &Meter) -> io::Result<()> {
    let mut client = Counted {
        inner: client,
        meter,
    };
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, RELAY_BUFFER, RELAY_BUFFER)
        .await
        .map(|_| ())
}

/// Direction of the bytes of one relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client → sandbox.
    ToSandbox,
    /// Sandbox → client.
    ToClient,
}

/// Byte counters of one relayed connection, feeding the forward's stats as
/// the bytes pass (not when the connection closes).
pub(crate) struct Meter {
    stats: Arc<ForwardStats>,
    /// This connection was already counted in `connections`.
    carried: AtomicBool,
    pub(crate) to_sandbox: AtomicU64,
    pub(crate) to_client: AtomicU64,
}

impl Meter {
    pub(crate) fn new(stats: Arc<ForwardStats>) -> Self {
        Self {
            stats,
            carried: AtomicBool::new(false),
            to_sandbox: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        }
    }

    pub(crate) fn add(&self, direction: Direction, n: usize) {
        if n == 0 {
            return;
        }
        if !self.carried.swap(true, Ordering::Relaxed) {
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
        }
        let own = match direction {
            Direction::ToSandbox => &self.to_sandbox,
            Direction::ToClient => &self.to_client,
        };
        own.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The client side of a copied connection, counting bytes both ways as
/// they pass (reads = towards the sandbox, writes = towards the client).
struct Counted<'a, S> {
    inner: S,
    meter: &'a Meter,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.meter.add(Direction::ToSandbox, n);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.meter.add(Direction::ToClient, n);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::backend::local::LocalBackend;

    /// Hang guard for a whole test, not a timing assertion.
    const GUARD: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn tcp_streams_are_recognised_for_splicing_and_others_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let boxed: Box<dyn Stream> = Box::new(tcp);
        assert!(into_tcp(boxed).is_ok());
        let (duplex, _other) = tokio::io::duplex(64);
        let boxed: Box<dyn Stream> = Box::new(duplex);
        assert!(into_tcp(boxed).is_err());
    }

    /// A whole forward on the local backend (a TCP upstream, so splice):
    /// the server uppercases what it reads until EOF, then closes.
    #[tokio::test]
    async fn accept_loop_relays_and_counts_every_connection() {
        tokio::time::timeout(GUARD, async {
            let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = server.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = server.accept().await {
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        s.read_to_end(&mut got).await.unwrap();
                        s.write_all(&got.to_ascii_uppercase()).await.unwrap();
                    });
                }
            });
            let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = front.local_addr().unwrap();
            let stats = Arc::new(ForwardStats::default());
            let target = Arc::new(Target {
                backend: Arc::new(LocalBackend::new("localhost")),
                sandbox: "localhost".into(),
                port,
            });
            let accept = tokio::spawn(accept_loop(front, target, stats.clone()));
            let mut total = 0u64;
            for (i, len) in [5usize, 100_000, 2 * 1024 * 1024].into_iter().enumerate() {
                let request: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
                let mut c = TcpStream::connect(addr).await.unwrap();
                c.write_all(&request).await.unwrap();
                c.shutdown().await.unwrap();
                let mut reply = Vec::new();
                c.read_to_end(&mut reply).await.unwrap();
                assert!(reply == request.to_ascii_uppercase(), "{len} B");
                total += 2 * len as u64;
            }
            // A connect-and-close probe carries nothing and is not counted.
            drop(TcpStream::connect(addr).await.unwrap());
            // Bytes are counted before the relay forwards the EOF that
            // ended each read above, so the tally is complete already.
            let (connections, bytes, errors, last_error) = stats.snapshot();
            assert_eq!(bytes, total);
            assert_eq!(connections, 3);
            assert_eq!(errors, 0, "{last_error:?}");
            accept.abort();
        })
        .await
        .expect("forward hung");
    }

    /// The copy path (a sandbox stream that is not a socket, like the exec
    /// relay's) counts both directions too.
    #[tokio::test]
    async fn copy_path_relays_a_non_socket_stream_and_counts_it() {
        tokio::time::timeout(GUARD, async {
            let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = TcpStream::connect(front.local_addr().unwrap())
                .await
                .unwrap();
            let (relay_client, _) = front.accept().await.unwrap();
            let (upstream, mut sandbox) = tokio::io::duplex(4096);
            let stats = Arc::new(ForwardStats::default());
            let relay = tokio::spawn(async move {
                let meter = Meter::new(stats.clone());
                copy(relay_client, Box::new(upstream), &meter)
                    .await
                    .unwrap();
                (
                    meter.to_sandbox.load(Ordering::Relaxed),
                    meter.to_client.load(Ordering::Relaxed),
                    stats.snapshot(),
                )
            });
            let request = vec![9u8; 300_000];
            let writer = tokio::spawn(async move {
                client.write_all(&request).await.unwrap();
                client.shutdown().await.unwrap();
                let mut reply = Vec::new();
                client.read_to_end(&mut reply).await.unwrap();
                reply
            });
            let mut got = Vec::new();
            sandbox.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), 300_000);
            sandbox.write_all(b"done").await.unwrap();
            sandbox.shutdown().await.unwrap();
            drop(sandbox);
            assert_eq!(writer.await.unwrap(), b"done");
            let (up, down, (connections, bytes, _, _)) = relay.await.unwrap();
            assert_eq!((up, down), (300_000, 4));
            assert_eq!((connections, bytes), (1, 300_004));
        })
        .await
        .expect("relay hung");
    }
}
