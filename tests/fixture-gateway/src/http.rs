//! Minimal HTTP/1.x server: one thread per listener, one short-lived thread per request.
//! Accepts block; to close the listeners on demand (the wedge mode) while the process
//! stays alive, the gateway clears a flag and wakes each accept with a connection.

use crate::config::Origins;
use crate::origin;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

const MAX_HEAD: usize = 16 * 1024;
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

pub struct Shared {
    pub health_status: u16,
    pub origins: Origins,
    /// Cleared to close every listener.
    pub serving: AtomicBool,
    /// Served on `/fixture/info` so tests can check identity without a process scan.
    pub info_json: String,
    pub log: fn(&str),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?;
    if !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Some(Request {
        method,
        path,
        headers,
    })
}

/// The routing decision: (status, content type, body).
pub fn route(req: &Request, shared: &Shared) -> (u16, &'static str, String) {
    const JSON: &str = "application/json";
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.method != "GET" && req.method != "HEAD" {
        return (405, TEXT, "method not allowed".into());
    }
    match req.path.as_str() {
        // OpenClaw ignores Origin on plain HTTP health requests.
        "/health" | "/healthz" => match shared.health_status {
            200 => (200, JSON, r#"{"ok":true,"status":"live"}"#.into()),
            401 => (401, JSON, r#"{"ok":false,"error":"unauthorized"}"#.into()),
            code => (code, JSON, r#"{"ok":false,"error":"internal"}"#.into()),
        },
        "/origin-check" => {
            let allowed = shared.origins.read().unwrap_or_else(|e| e.into_inner());
            let origin = req.header("origin");
            if origin::is_allowed(origin, &allowed) {
                (200, JSON, r#"{"ok":true}"#.into())
            } else {
                (shared.log)(&format!(
                    "origin rejected cause=origin-mismatch origin={} host={}",
                    origin.unwrap_or("-"),
                    req.header("host").unwrap_or("-")
                ));
                (403, TEXT, "origin not allowed".into())
            }
        }
        "/fixture/info" => (200, JSON, shared.info_json.clone()),
        _ => (404, TEXT, "not found".into()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > MAX_HEAD {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let (status, ctype, body) = match parse_head(&head) {
        Some(req) => {
            let (s, c, b) = route(&req, shared);
            (
                s,
                c,
                if req.method == "HEAD" {
                    String::new()
                } else {
                    b
                },
            )
        }
        None => (400, "text/plain", "bad request".into()),
    };
    let reply = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// The accept threads of one gateway and the addresses they listen on.
pub struct AcceptLoops {
    threads: Vec<thread::JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
}

/// Runs a blocking accept loop per listener until `shared.serving` is cleared
/// and [`AcceptLoops::stop`] wakes them. Blocking (not polling) so a request
/// is served the moment it arrives, as a real gateway does.
pub fn spawn_accept_loops(listeners: Vec<TcpListener>, shared: Arc<Shared>) -> AcceptLoops {
    let addrs = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let threads = listeners
        .into_iter()
        .map(|listener| {
            let shared = shared.clone();
            thread::spawn(move || {
                loop {
                    let accepted = listener.accept();
                    if !shared.serving.load(Ordering::SeqCst) {
                        return;
                    }
                    match accepted {
                        Ok((stream, _)) => {
                            let shared = shared.clone();
                            thread::spawn(move || handle(stream, &shared));
                        }
                        // EMFILE and friends: back off instead of spinning.
                        Err(_) => thread::sleep(ACCEPT_ERROR_PAUSE),
                    }
                }
            })
        })
        .collect();
    AcceptLoops { threads, addrs }
}

impl AcceptLoops {
    /// Close every listener: clear `serving`, wake each blocked accept with a
    /// connection of our own, and wait until the threads (and so the
    /// listeners) are gone, so the port is closed when this returns.
    pub fn stop(self, shared: &Shared) {
        shared.serving.store(false, Ordering::SeqCst);
        for addr in &self.addrs {
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::RwLock;

    fn shared(status: u16, origins: &[&str]) -> Shared {
        Shared {
            health_status: status,
            origins: Arc::new(RwLock::new(origins.iter().map(|s| s.to_string()).collect())),
            serving: AtomicBool::new(true),
            info_json: "{}".into(),
            log: |_| {},
        }
    }

    fn get(path: &str, origin: Option<&str>) -> Request {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:18789\r\n");
        if let Some(o) = origin {
            head.push_str(&format!("Origin: {o}\r\n"));
        }
        head.push_str("\r\n");
        parse_head(&head).unwrap()
    }

    #[test]
    fn parses_request_line_query_and_headers() {
        let r = parse_head("GET /health?x=1 HTTP/1.0\r\nORIGIN: http://a\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/health"));
        assert_eq!(r.header("origin"), Some("http://a"));
        assert_eq!(parse_head("garbage"), None);
        assert_eq!(parse_head("GET / SPDY/3\r\n\r\n"), None);
    }

    #[test]
    fn health_answers_the_configured_status() {
        assert_eq!(route(&get("/health", None), &shared(200, &[])).0, 200);
        assert_eq!(route(&get("/healthz", None), &shared(401, &[])).0, 401);
        assert_eq!(route(&get("/health", None), &shared(500, &[])).0, 500);
        // Health ignores Origin entirely.
        assert_eq!(
            route(&get("/health", Some("http://evil")), &shared(200, &[])).0,
            200
        );
    }

    #[test]
    fn origin_check_uses_the_live_list() {
        let s = shared(200, &["http://127.0.0.1:18789"]);
        assert_eq!(
            route(&get("/origin-check", Some("http://127.0.0.1:18789")), &s).0,
            200
        );
        let (code, _, body) = route(&get("/origin-check", Some("http://localhost:9")), &s);
        assert_eq!((code, body.as_str()), (403, "origin not allowed"));
        s.origins.write().unwrap().push("http://localhost:9".into());
        assert_eq!(
            route(&get("/origin-check", Some("http://localhost:9")), &s).0,
            200
        );
    }

    #[test]
    fn unknown_paths_and_methods() {
        let s = shared(200, &[]);
        assert_eq!(route(&get("/nope", None), &s).0, 404);
        let post = parse_head("POST /health HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(route(&post, &s).0, 405);
    }
}
