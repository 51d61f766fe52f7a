//! Host ports for forward scenarios: a free one, or one held by "somebody else".

use anyhow::{Context, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the foreign listener answers: a 200, because the dangerous impostor is the one
/// that looks healthy (NemoClaw U8/U12: a 200 from a non-owned listener must be rejected).
pub const FOREIGN_BODY: &str = "foreign-listener: not runner's forward";

/// A port the kernel just handed out on 127.0.0.1. Another process may take it before
/// the caller binds it; tests accept that small race rather than hard-coding ports.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A TCP listener on 127.0.0.1:PORT that is not runner's, answering every request with
/// 200 [`FOREIGN_BODY`]. Dropping it closes the port.
pub struct ForeignListener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ForeignListener {
    pub fn occupy(port: u16) -> Result<ForeignListener> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener =
            TcpListener::bind(addr).with_context(|| format!("foreign listener: bind {addr}"))?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("foreign-listener-{port}"))
            .spawn(move || serve(listener, &flag))?;
        Ok(ForeignListener {
            port,
            stop,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{FOREIGN_BODY}",
                    FOREIGN_BODY.len()
                );
                let _ = s.write_all(reply.as_bytes());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    // The listener drops here, closing the port before Drop returns.
}

impl Drop for ForeignListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn occupies_answers_and_releases_the_port() {
        let port = free_port().unwrap();
        let foreign = ForeignListener::occupy(port).unwrap();
        assert_eq!(foreign.port(), port);
        assert!(
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err(),
            "port must be taken"
        );

        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with(FOREIGN_BODY),
            "{reply}"
        );

        drop(foreign);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port must be free after drop");
    }
}
