//! One HTTP/1.1 request over an already connected stream (hyper's
//! connection-level client: no pool, no DNS, the stream decides where the
//! bytes go). The body is kept up to `max_body`; the rest is not read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::{HttpRequest, HttpResponse, NetError};
use crate::backend::Stream;

/// Sends `req` over `stream` and reads the answer, all within `timeout`.
pub async fn send(
    stream: Box<dyn Stream>,
    req: &HttpRequest,
    timeout: Duration,
) -> Result<HttpResponse, NetError> {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    tokio::time::timeout(timeout, exchange(stream, req))
        .await
        .map_err(|_| NetError::Timeout(ms))?
}

async fn exchange(stream: Box<dyn Stream>, req: &HttpRequest) -> Result<HttpResponse, NetError> {
    let request = build(req)?;
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| NetError::Io(format!("http handshake: {e}")))?;
    // The connection task dies with this call, whatever the server does.
    let driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "http connection ended with an error");
        }
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut data = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let room = req.max_body.saturating_sub(data.len());
        if chunk.len() > room {
            data.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        data.extend_from_slice(&chunk);
    }
    drop(driver);
    Ok(HttpResponse {
        status,
        headers,
        body: data,
        truncated,
    })
}

fn build(req: &HttpRequest) -> Result<hyper::Request<Full<Bytes>>, NetError> {
    let mut builder = hyper::Request::builder()
        .method(req.method.as_str())
        .uri(req.path.as_str());
    let has_host = req
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"));
    if !has_host {
        builder = builder.header(hyper::header::HOST, req.host.as_str());
    }
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = req.body.clone().map(Bytes::from).unwrap_or_default();
    builder
        .body(Full::new(body))
        .map_err(|e| NetError::Protocol(format!("invalid request: {e}")))
}

fn classify(e: &hyper::Error) -> NetError {
    if e.is_parse() || e.is_user() {
        NetError::Protocol(e.to_string())
    } else {
        NetError::Io(format!("{e}{}", source_text(e)))
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(|s| format!(": {s}")).unwrap_or_default()
}

/// Aborts a spawned task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A one-shot server: reads the request head, answers `reply`.
    async fn server(reply: Vec<u8>) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(&reply).await.unwrap();
            let _ = s.shutdown().await;
            seen
        });
        (port, task)
    }

    async fn connect(port: u16) -> Box<dyn Stream> {
        Box::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
    }

    fn request(max_body: usize) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            path: "/health".into(),
            host: "127.0.0.1:18789".into(),
            headers: vec![("Origin".into(), "http://localhost:18789".into())],
            body: None,
            max_body,
        }
    }

    #[tokio::test]
    async fn content_length_body_and_request_head() {
        let (port, seen) =
            server(b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\nX-A: b\r\n\r\n{\"ok\":true,\"status\":\"live\"}".to_vec()).await;
        let r = send(connect(port).await, &request(1024), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"ok":true,"status":"live"}"#);
        assert!(!r.truncated);
        assert!(r.headers.contains(&("x-a".into(), "b".into())));
        let head = String::from_utf8(seen.await.unwrap())
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with("get /health http/1.1\r\n"));
        assert!(head.contains("host: 127.0.0.1:18789\r\n"));
        assert!(head.contains("origin: http://localhost:18789\r\n"));
    }

    #[tokio::test]
    async fn chunked_body_is_decoded() {
        let (port, _) = server(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec(),
        )
        .await;
        let r = send(connect(port).await, &request(1024), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body, b"hello world");
    }

    #[tokio::test]
    async fn body_is_capped() {
        let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        reply.extend(std::iter::repeat_n(b'x', 100_000));
        let (port, _) = server(reply).await;
        let r = send(connect(port).await, &request(1000), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.body.len(), 1000);
        assert!(r.truncated);
    }

    #[tokio::test]
    async fn post_sends_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"ping") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            seen
        });
        let mut req = request(1024);
        req.method = "POST".into();
        req.body = Some(b"ping".to_vec());
        let r = send(connect(port).await, &req, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 204);
        let head = String::from_utf8(task.await.unwrap())
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.contains("content-length: 4\r\n"));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(s);
        });
        let started = std::time::Instant::now();
        let e = send(
            connect(port).await,
            &request(1024),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert_eq!(e, NetError::Timeout(300));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let (port, _) = server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()).await;
        let e = send(connect(port).await, &request(1024), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::Protocol(_)), "{e:?}");
    }

    #[tokio::test]
    async fn bad_header_is_refused_before_sending() {
        let (port, _) = server(Vec::new()).await;
        let mut req = request(10);
        req.headers.push(("bad header".into(), "x".into()));
        let e = send(connect(port).await, &req, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::Protocol(_)));
    }
}
