//! Reaching a service bound to a container's loopback (the gateways listen on 127.0.0.1
//! only) without relying on curl or wget in the image: a short-lived host thread enters
//! the container's network namespace and connects there. Needs root on the engine's
//! host, which the e2e environment is.

use crate::sys;
use anyhow::{Context, Result, anyhow, bail};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `f` on a fresh thread inside the network namespace of host pid `pid`. The thread
/// exits afterwards, so the namespace switch cannot leak into other work.
async fn in_netns<T, F>(pid: u32, limit: Duration, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns-{pid}"))
        .spawn(move || {
            let result = (|| {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).with_context(|| {
                    format!("open /proc/{pid}/ns/net (container gone? not root?)")
                })?;
                sys::enter_net_namespace(&ns)
                    .context("setns into the container's netns (needs root)")?;
                f()
            })();
            let _ = tx.send(result);
        })
        .context("spawn netns thread")?;
    // The thread's own socket timeouts bound it; this bounds the caller even if they fail.
    tokio::time::timeout(limit + Duration::from_secs(1), rx)
        .await
        .map_err(|_| anyhow!("netns call into pid {pid} did not finish within {limit:?}"))?
        .map_err(|_| anyhow!("netns thread for pid {pid} died"))?
}

/// `Ok(false)` when the port refuses or resets connections (nothing listening).
pub async fn tcp_listening(pid: u32, port: u16, limit: Duration) -> Result<bool> {
    in_netns(pid, limit, move || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(_) => Ok(true),
            // A reset is a listener being torn down (a killed gateway's
            // socket while the kernel drops its backlog): not listening.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e).with_context(|| format!("connect {addr}")),
        }
    })
    .await
}

/// A GET to 127.0.0.1:`port` inside the container. Any HTTP status is `Ok`; only a
/// transport failure (refused, reset, timeout) is an `Err`.
pub async fn http_get(
    pid: u32,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Result<HttpReply> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: runner-e2e\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    in_netns(pid, limit, move || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut s =
            TcpStream::connect_timeout(&addr, limit).with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(limit))?;
        s.set_write_timeout(Some(limit))?;
        s.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .with_context(|| format!("read reply from {addr}"))?;
        parse_reply(&raw)
    })
    .await
}

pub fn parse_reply(raw: &[u8]) -> Result<HttpReply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("incomplete HTTP reply ({} bytes)", raw.len()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    if !status_line.starts_with("HTTP/") {
        bail!("not an HTTP reply: {status_line:?}");
    }
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_body() {
        let r = parse_reply(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\norigin not allowed",
        )
        .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "origin not allowed");
    }

    #[test]
    fn rejects_truncated_or_foreign_replies() {
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nX: y").is_err());
        assert!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn reaches_a_listener_in_our_own_namespace() {
        // Our own pid's namespace is the host's: exercises the thread + setns path.
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
        });
        let me = std::process::id();
        let r = http_get(
            me,
            port,
            "/x",
            &[("Origin", "http://a")],
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        server.join().unwrap();
        let closed = crate::ports::free_port().unwrap();
        assert!(
            !tcp_listening(me, closed, Duration::from_secs(2))
                .await
                .unwrap()
        );
    }
}
