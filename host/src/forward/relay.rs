//! The data plane shared by detached and in-process forwards: accept on the
//! host listener, reach the sandbox port through the backend for *every*
//! connection (so a recreated container — new id, new network namespace —
//! is found again without restarting the forward), and copy both ways.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::backend::Backend;

/// Upper bound for reaching the sandbox side of one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Per-direction copy buffer. tokio's default (8 KiB) makes 8x the read and
/// write syscalls of 64 KiB on bulk transfers, which measurably lowers
/// throughput; larger buffers gained nothing (docs/benchmarks.md, Forward).
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
    let mut upstream = match target
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
    let mut client = Counted {
        inner: client,
        stats: stats.clone(),
        carried: false,
    };
    if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        RELAY_BUFFER,
        RELAY_BUFFER,
    )
    .await
    {
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

/// The client side of a relayed connection, counting bytes both ways as
/// they pass (reads = towards the sandbox, writes = towards the client).
struct Counted<S> {
    inner: S,
    stats: Arc<ForwardStats>,
    /// This connection was already counted in `connections`.
    carried: bool,
}

impl<S> Counted<S> {
    fn add(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if !self.carried {
            self.carried = true;
            self.stats.connections.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.add(n);
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.add(n);
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
