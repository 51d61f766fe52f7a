//! Protocol clients that run over any [`Stream`](crate::backend::Stream) —
//! a netns-connected socket, an exec relay, or a host socket to a forward —
//! so probes never depend on curl or wget inside the image.
//!
//! `http::send(stream, &HttpRequest, deadline) -> Result<HttpResponse, NetError>`
//! and `ws::converse(stream, &WsRequest, deadline) -> Result<WsTranscript, NetError>`.

pub mod http;
pub mod ws;

/// One HTTP/1.1 request (the connection is used once).
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Sent as the `Host` header.
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Body bytes kept; the rest is dropped and `truncated` set.
    pub max_body: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// One step of a scripted WebSocket conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsStep {
    Send(String),
    Receive,
}

#[derive(Debug, Clone, Default)]
pub struct WsRequest {
    pub path: String,
    pub host: String,
    /// Extra handshake headers, e.g. `Origin`.
    pub headers: Vec<(String, String)>,
    pub steps: Vec<WsStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsTranscript {
    pub upgrade_status: u16,
    pub received: Vec<String>,
    pub close_code: Option<u16>,
    pub close_reason: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NetError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("connection failed: {0}")]
    Io(String),
    #[error("protocol error: {0}")]
    Protocol(String),
}
