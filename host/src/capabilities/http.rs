//! `http.send` and `http.websocket`: requests to the sandbox's loopback (or
//! to this sandbox's own forward on the host) without tools in the image.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::backend::{Backend, Stream};
use crate::forward::ForwardRegistry;
use crate::model::{CapError, Kv};
use crate::net::{self, HttpRequest, HttpResponse, NetError, WsRequest, WsStep, WsTranscript};

use super::{Access, Capability, cap_error, clamp_bytes, clamp_ms, interface_view};

interface_view!(
    /// The `http` interface.
    Http,
    HttpView
);

/// Where a request goes: a port on the sandbox's loopback, or this
/// sandbox's own forward on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    SandboxLoopback(u16),
    HostForward(u16),
}

/// An HTTP request as a plugin asks for it; 0 means "the host default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub route: Route,
    pub method: String,
    pub path: String,
    pub headers: Vec<Kv>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u32,
    pub max_body: u32,
}

/// A scripted WebSocket conversation as a plugin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsCall {
    pub route: Route,
    pub path: String,
    pub headers: Vec<Kv>,
    pub steps: Vec<WsStep>,
    pub timeout_ms: u32,
}

/// Open the connection a route names, within `timeout`. Takes what it needs
/// by value so the future does not borrow the (non-`Sync`) store data.
async fn open(
    backend: &dyn Backend,
    forwards: Option<Arc<ForwardRegistry>>,
    sandbox: &str,
    route: Route,
    timeout: Duration,
) -> Result<(Box<dyn Stream>, String), CapError> {
    {
        match route {
            Route::SandboxLoopback(port) => {
                let stream = backend
                    .connect_loopback(sandbox, port, timeout)
                    .await
                    .map_err(cap_error)?;
                Ok((stream, format!("127.0.0.1:{port}")))
            }
            Route::HostForward(port) => {
                let forwards =
                    forwards.ok_or_else(|| CapError::Unavailable("no forward registry".into()))?;
                let addr = forwards.forwards_to(sandbox, port).ok_or_else(|| {
                    CapError::Denied(format!("host port {port} is not a forward of sandbox {sandbox} owned by this runner"))
                })?;
                let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| CapError::Timeout(format!("connecting to {addr}")))?
                    .map_err(|e| CapError::Failed(format!("connecting to {addr}: {e}")))?;
                let _ = stream.set_nodelay(true);
                Ok((Box::new(stream), addr.to_string()))
            }
        }
    }
}

fn net_error(e: NetError) -> CapError {
    match e {
        NetError::Timeout(_) => CapError::Timeout(e.to_string()),
        NetError::Io(_) | NetError::Protocol(_) => CapError::Failed(e.to_string()),
    }
}

fn pairs(kvs: Vec<Kv>) -> Vec<(String, String)> {
    kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

/// What an admitted HTTP or WebSocket call works with.
struct Admitted {
    backend: Arc<dyn Backend>,
    forwards: Option<Arc<ForwardRegistry>>,
    timeout: Duration,
}

impl HttpView<'_> {
    /// The checks both calls share: bound sandbox, declared capability, an
    /// absolute path, and a clamped deadline.
    fn admit_http(
        &mut self,
        sandbox: &str,
        path: &str,
        timeout_ms: u32,
    ) -> Result<Admitted, CapError> {
        let backend = self
            .cx
            .admit(Capability::Http, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        if !path.starts_with('/') {
            return Err(CapError::Denied(format!("path '{path}' must start with /")));
        }
        let limits = self.cx.limits;
        Ok(Admitted {
            backend,
            forwards: self.cx.forwards(),
            // Not cut to the call's deadline (unlike exec): a loopback
            // request leaves nothing running behind, and a request cut short
            // by the budget would read as a gateway that does not answer.
            timeout: clamp_ms(
                timeout_ms,
                limits.http_default_timeout,
                limits.http_max_timeout,
            ),
        })
    }

    pub async fn send(&mut self, sandbox: &str, req: HttpCall) -> Result<HttpResponse, CapError> {
        let Admitted {
            backend,
            forwards,
            timeout,
        } = self.admit_http(sandbox, &req.path, req.timeout_ms)?;
        let limits = self.cx.limits;
        let max_body = clamp_bytes(req.max_body, limits.output_default, limits.output_max);
        let work = async {
            let (stream, host) =
                open(backend.as_ref(), forwards, sandbox, req.route, timeout).await?;
            let request = HttpRequest {
                method: req.method,
                path: req.path,
                host,
                headers: pairs(req.headers),
                body: req.body,
                max_body,
            };
            net::http::send(stream, &request, timeout)
                .await
                .map_err(net_error)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            CapError::Timeout(format!("http request exceeded {} ms", timeout.as_millis()))
        })?
    }

    pub async fn websocket(
        &mut self,
        sandbox: &str,
        req: WsCall,
    ) -> Result<WsTranscript, CapError> {
        let Admitted {
            backend,
            forwards,
            timeout,
        } = self.admit_http(sandbox, &req.path, req.timeout_ms)?;
        let work = async {
            let (stream, host) =
                open(backend.as_ref(), forwards, sandbox, req.route, timeout).await?;
            let request = WsRequest {
                path: req.path,
                host,
                headers: pairs(req.headers),
                steps: req.steps,
            };
            net::ws::converse(stream, &request, timeout)
                .await
                .map_err(net_error)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            CapError::Timeout(format!("websocket exceeded {} ms", timeout.as_millis()))
        })?
    }
}
