//! A scripted WebSocket client (RFC 6455) over an already connected stream:
//! handshake with extra headers, then `send`/`receive` steps, capturing the
//! server's close code and reason. One deadline bounds everything.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::http::AbortOnDrop;
use super::{NetError, WsRequest, WsStep, WsTranscript};
use crate::backend::Stream;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 1024 * 1024;
/// How long to wait for the server's close after our own, at most.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Runs `req` over `stream` within `timeout`.
pub async fn converse(
    stream: Box<dyn Stream>,
    req: &WsRequest,
    timeout: Duration,
) -> Result<WsTranscript, NetError> {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let deadline = Instant::now() + timeout;
    tokio::time::timeout_at(deadline, run(stream, req, deadline))
        .await
        .map_err(|_| NetError::Timeout(ms))?
}

async fn run(
    stream: Box<dyn Stream>,
    req: &WsRequest,
    deadline: Instant,
) -> Result<WsTranscript, NetError> {
    let key = B64.encode(random::<16>()?);
    let mut builder = hyper::Request::builder()
        .method("GET")
        .uri(req.path.as_str())
        .header(hyper::header::HOST, req.host.as_str())
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header("Sec-WebSocket-Key", key.as_str())
        .header("Sec-WebSocket-Version", "13");
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| NetError::Protocol(format!("invalid handshake request: {e}")))?;

    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| NetError::Io(format!("websocket handshake: {e}")))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "websocket connection ended with an error");
        }
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| NetError::Io(format!("websocket handshake: {e}")))?;
    let mut transcript = WsTranscript {
        upgrade_status: response.status().as_u16(),
        ..WsTranscript::default()
    };
    if transcript.upgrade_status != 101 {
        return Ok(transcript);
    }
    let expected = accept_key(&key);
    let accept = response
        .headers()
        .get("sec-websocket-accept")
        .and_then(|v| v.to_str().ok());
    if accept != Some(expected.as_str()) {
        return Err(NetError::Protocol(format!(
            "bad Sec-WebSocket-Accept {accept:?}, expected {expected}"
        )));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| NetError::Io(format!("websocket upgrade: {e}")))?;
    let mut io = TokioIo::new(upgraded);

    let mut closed = false;
    for step in &req.steps {
        match step {
            WsStep::Send(text) => write_frame(&mut io, OP_TEXT, text.as_bytes()).await?,
            WsStep::Receive => match read_message(&mut io).await? {
                Message::Text(t) => transcript.received.push(t),
                Message::Close(code, reason) => {
                    record_close(&mut transcript, code, reason);
                    let _ = write_close(&mut io, code.unwrap_or(1000)).await;
                    closed = true;
                }
                Message::Eof => closed = true,
            },
        }
        if closed {
            return Ok(transcript);
        }
    }

    // Say goodbye and give the server a moment to answer with its own close
    // (an origin rejection often arrives right after the last reply).
    let _ = write_close(&mut io, 1000).await;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let grace = CLOSE_GRACE.min(remaining / 2);
    let _ = tokio::time::timeout(grace, async {
        loop {
            match read_message(&mut io).await {
                Ok(Message::Close(code, reason)) => {
                    record_close(&mut transcript, code, reason);
                    break;
                }
                Ok(Message::Text(_)) => {}
                Ok(Message::Eof) | Err(_) => break,
            }
        }
    })
    .await;
    Ok(transcript)
}

fn record_close(t: &mut WsTranscript, code: Option<u16>, reason: String) {
    t.close_code = code;
    t.close_reason = reason;
}

enum Message {
    Text(String),
    Close(Option<u16>, String),
    Eof,
}

/// Reads the next complete data message, answering pings on the way.
/// Binary messages are returned as (lossy) text so no step waits forever.
async fn read_message<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) -> Result<Message, NetError> {
    let mut message: Option<Vec<u8>> = None;
    loop {
        let Some(frame) = read_frame(io).await? else {
            return Ok(Message::Eof);
        };
        match frame.opcode {
            OP_TEXT | OP_BINARY => {
                if frame.fin {
                    return Ok(Message::Text(
                        String::from_utf8_lossy(&frame.payload).into_owned(),
                    ));
                }
                message = Some(frame.payload);
            }
            OP_CONT => {
                let buf = message.as_mut().ok_or_else(|| {
                    NetError::Protocol("continuation frame without a message".into())
                })?;
                if buf.len() + frame.payload.len() > MAX_MESSAGE {
                    return Err(NetError::Protocol(format!(
                        "message larger than {MAX_MESSAGE} bytes"
                    )));
                }
                buf.extend_from_slice(&frame.payload);
                if frame.fin {
                    let done = message.take().unwrap_or_default();
                    return Ok(Message::Text(String::from_utf8_lossy(&done).into_owned()));
                }
            }
            OP_CLOSE => {
                let code = (frame.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                let reason = frame
                    .payload
                    .get(2..)
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .unwrap_or_default();
                return Ok(Message::Close(code, reason));
            }
            OP_PING => write_frame(io, OP_PONG, &frame.payload).await?,
            OP_PONG => {}
            other => return Err(NetError::Protocol(format!("unknown opcode {other:#x}"))),
        }
    }
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// One frame; `None` on a clean EOF before its first byte.
async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> Result<Option<Frame>, NetError> {
    let mut head = [0u8; 2];
    match io.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(NetError::Io(format!("websocket read: {e}"))),
    }
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(io.read_u16().await.map_err(io_err)?),
        127 => io.read_u64().await.map_err(io_err)?,
        n => u64::from(n),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(NetError::Protocol(format!(
            "frame of {len} bytes exceeds {MAX_MESSAGE}"
        )));
    }
    let mut mask = [0u8; 4];
    if masked {
        io.read_exact(&mut mask).await.map_err(io_err)?;
    }
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await.map_err(io_err)?;
    if masked {
        apply_mask(&mut payload, mask);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// Client frames are always masked (RFC 6455 §5.3).
async fn write_frame<S: AsyncWrite + Unpin>(
    io: &mut S,
    opcode: u8,
    payload: &[u8],
) -> Result<(), NetError> {
    let mut frame = encode_frame(opcode, payload, random::<4>()?);
    io.write_all(&frame).await.map_err(io_err)?;
    io.flush().await.map_err(io_err)?;
    frame.clear();
    Ok(())
}

async fn write_close<S: AsyncWrite + Unpin>(io: &mut S, code: u16) -> Result<(), NetError> {
    write_frame(io, OP_CLOSE, &code.to_be_bytes()).await
}

fn encode_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], mask);
    frame
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    B64.encode(h.finalize())
}

fn random<const N: usize>() -> Result<[u8; N], NetError> {
    let mut buf = [0u8; N];
    rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| NetError::Io(format!("getrandom: {e}")))?;
    Ok(buf)
}

fn io_err(e: std::io::Error) -> NetError {
    NetError::Io(format!("websocket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn rfc_accept_key() {
        // The example from RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_roundtrip_lengths() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload = vec![b'a'; len];
            let frame = encode_frame(OP_TEXT, &payload, [1, 2, 3, 4]);
            let parsed = futures_util::FutureExt::now_or_never(read_frame(&mut &frame[..]))
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(parsed.fin);
            assert_eq!(parsed.opcode, OP_TEXT);
            assert_eq!(parsed.payload, payload);
        }
    }

    /// What the scripted test server does after the handshake.
    #[derive(Clone, Copy)]
    enum Script {
        /// challenge; read one text; reply; close 1008 "origin not allowed".
        RejectOrigin,
        /// challenge, then silence.
        Silent,
    }

    async fn serve(
        status_line: &'static str,
        script: Script,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Sec-WebSocket-Key: ")
                        .or_else(|| l.strip_prefix("sec-websocket-key: "))
                })
                .unwrap()
                .trim()
                .to_string();
            if !status_line.contains("101") {
                s.write_all(format!("{status_line}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                return head;
            }
            s.write_all(
                format!(
                    "{status_line}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(&key)
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            // Unmasked server frames.
            let text = |t: &str| {
                let mut f = vec![0x81, t.len() as u8];
                f.extend_from_slice(t.as_bytes());
                f
            };
            s.write_all(&text(r#"{"type":"event","event":"connect.challenge"}"#))
                .await
                .unwrap();
            if let Script::Silent = script {
                tokio::time::sleep(Duration::from_secs(10)).await;
                return head;
            }
            // A ping the client must answer, then the client's request.
            // (The client answers the ping when it next reads, so the pong may
            // come before or after its request.)
            s.write_all(&[0x89, 0x02, b'h', b'i']).await.unwrap();
            let a = read_frame(&mut s).await.unwrap().unwrap();
            let b = read_frame(&mut s).await.unwrap().unwrap();
            let mut ops = [a.opcode, b.opcode];
            ops.sort();
            assert_eq!(ops, [OP_TEXT, OP_PONG]);
            let pong = if a.opcode == OP_PONG { a } else { b };
            assert_eq!(pong.payload, b"hi");
            // A fragmented reply: "res" + "ponse".
            s.write_all(&[0x01, 0x03, b'r', b'e', b's']).await.unwrap();
            s.write_all(&[0x80, 0x05, b'p', b'o', b'n', b's', b'e'])
                .await
                .unwrap();
            let reason = b"origin not allowed";
            let mut close = vec![0x88, (2 + reason.len()) as u8, 0x03, 0xF0];
            close.extend_from_slice(reason);
            s.write_all(&close).await.unwrap();
            let _ = read_frame(&mut s).await;
            head
        });
        (port, task)
    }

    fn request(steps: Vec<WsStep>) -> WsRequest {
        WsRequest {
            path: "/".into(),
            host: "127.0.0.1:18789".into(),
            headers: vec![("Origin".into(), "http://evil.example.com".into())],
            steps,
        }
    }

    async fn connect(port: u16) -> Box<dyn Stream> {
        Box::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap())
    }

    #[tokio::test]
    async fn scripted_conversation_captures_close() {
        let (port, head) = serve("HTTP/1.1 101 Switching Protocols", Script::RejectOrigin).await;
        let req = request(vec![
            WsStep::Receive,
            WsStep::Send(r#"{"type":"req","method":"connect"}"#.into()),
            WsStep::Receive,
            WsStep::Receive,
        ]);
        let t = converse(connect(port).await, &req, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(t.upgrade_status, 101);
        assert_eq!(
            t.received,
            vec![
                r#"{"type":"event","event":"connect.challenge"}"#.to_string(),
                "response".into()
            ]
        );
        assert_eq!(t.close_code, Some(1008));
        assert_eq!(t.close_reason, "origin not allowed");
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(head.contains("origin: http://evil.example.com"));
        assert!(head.contains("upgrade: websocket"));
    }

    #[tokio::test]
    async fn close_after_last_step_is_still_captured() {
        let (port, _) = serve("HTTP/1.1 101 Switching Protocols", Script::RejectOrigin).await;
        let req = request(vec![
            WsStep::Receive,
            WsStep::Send("{}".into()),
            WsStep::Receive,
        ]);
        let t = converse(connect(port).await, &req, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(t.received.len(), 2);
        assert_eq!(t.close_code, Some(1008));
    }

    #[tokio::test]
    async fn refused_upgrade_reports_status() {
        let (port, _) = serve("HTTP/1.1 403 Forbidden", Script::Silent).await;
        let t = converse(
            connect(port).await,
            &request(vec![WsStep::Receive]),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(t.upgrade_status, 403);
        assert!(t.received.is_empty());
        assert_eq!(t.close_code, None);
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let (port, _) = serve("HTTP/1.1 101 Switching Protocols", Script::Silent).await;
        let started = std::time::Instant::now();
        let e = converse(
            connect(port).await,
            &request(vec![WsStep::Receive, WsStep::Receive]),
            Duration::from_millis(400),
        )
        .await
        .unwrap_err();
        assert_eq!(e, NetError::Timeout(400));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
