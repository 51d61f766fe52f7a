//! Host-side port forwards: 127.0.0.1:<host-port> on the host relayed to
//! 127.0.0.1:<sandbox-port> inside a sandbox.
//!
//! This registry owns forwards served by the current process. Each accepted
//! connection resolves the sandbox again through the backend, so a forward
//! follows a recreated container (new id, new network namespace) without
//! being restarted. A listener that is not in the registry is foreign and is
//! never touched.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::backend::Backend;

/// Upper bound for reaching the sandbox side of one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for deciding whether something else answers on a port.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForwardSpec {
    pub host_port: u16,
    pub sandbox_port: u16,
    pub bind: IpAddr,
}

impl ForwardSpec {
    pub fn loopback(host_port: u16, sandbox_port: u16) -> Self {
        Self {
            host_port,
            sandbox_port,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.host_port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardState {
    Owned,
    Absent,
    Stale,
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    pub state: ForwardState,
    pub spec: ForwardSpec,
    pub pid: Option<u32>,
    pub evidence: Vec<(String, String)>,
}

/// Traffic counters of one forward.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

struct Entry {
    sandbox: String,
    spec: ForwardSpec,
    task: JoinHandle<()>,
    stats: Arc<ForwardStats>,
}

/// One row of `runner forward list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardRow {
    pub sandbox: String,
    pub bind: String,
    pub host_port: u16,
    pub sandbox_port: u16,
    pub pid: u32,
    pub state: ForwardState,
    pub connections: u64,
    pub bytes: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct ForwardRegistry {
    entries: Mutex<HashMap<SocketAddr, Entry>>,
}

impl ForwardRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Classify the host port for `sandbox`.
    pub async fn status(&self, sandbox: &str, spec: &ForwardSpec) -> ForwardStatus {
        let mut evidence = vec![("bind".to_string(), spec.addr().to_string())];
        let own = {
            let entries = self.entries.lock().unwrap();
            entries.get(&spec.addr()).map(|e| {
                (
                    e.sandbox.clone(),
                    e.spec.sandbox_port,
                    e.task.is_finished(),
                    e.stats.connections.load(Ordering::Relaxed),
                )
            })
        };
        if let Some((owner, sandbox_port, finished, connections)) = own {
            evidence.push(("connections".into(), connections.to_string()));
            let state = if owner != sandbox {
                evidence.push(("forwarded-to".into(), owner));
                ForwardState::Foreign
            } else if finished || sandbox_port != spec.sandbox_port {
                evidence.push(("target-port".into(), sandbox_port.to_string()));
                ForwardState::Stale
            } else {
                ForwardState::Owned
            };
            return ForwardStatus {
                state,
                spec: spec.clone(),
                pid: Some(std::process::id()),
                evidence,
            };
        }
        let answering = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(spec.addr())).await,
            Ok(Ok(_))
        );
        let state = if answering {
            evidence.push(("listener".into(), "not runner's".into()));
            ForwardState::Foreign
        } else {
            ForwardState::Absent
        };
        ForwardStatus {
            state,
            spec: spec.clone(),
            pid: None,
            evidence,
        }
    }

    /// Make the forward owned: start it if absent, replace it if stale. A
    /// foreign listener is reported, never replaced.
    pub async fn ensure(&self, backend: Arc<dyn Backend>, sandbox: &str, spec: &ForwardSpec) -> Result<ForwardStatus, String> {
        let current = self.status(sandbox, spec).await;
        match current.state {
            ForwardState::Owned | ForwardState::Foreign => return Ok(current),
            ForwardState::Stale => {
                if let Some(old) = self.entries.lock().unwrap().remove(&spec.addr()) {
                    old.task.abort();
                }
            }
            ForwardState::Absent => {}
        }
        let listener = match TcpListener::bind(spec.addr()).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let mut status = self.status(sandbox, spec).await;
                status.state = ForwardState::Foreign;
                status.evidence.push(("bind-error".into(), e.to_string()));
                return Ok(status);
            }
            Err(e) => return Err(format!("cannot listen on {}: {e}", spec.addr())),
        };
        let stats = Arc::new(ForwardStats::default());
        let task = tokio::spawn(serve(listener, backend, sandbox.to_string(), spec.sandbox_port, stats.clone()));
        self.entries.lock().unwrap().insert(
            spec.addr(),
            Entry {
                sandbox: sandbox.to_string(),
                spec: spec.clone(),
                task,
                stats,
            },
        );
        tracing::info!(sandbox, bind = %spec.addr(), sandbox_port = spec.sandbox_port, "forward started");
        Ok(self.status(sandbox, spec).await)
    }

    /// Is `host_port` forwarded by this process to `sandbox`?
    pub fn forwards_to(&self, sandbox: &str, host_port: u16) -> Option<SocketAddr> {
        self.entries
            .lock()
            .unwrap()
            .values()
            .find(|e| e.sandbox == sandbox && e.spec.host_port == host_port && !e.task.is_finished())
            .map(|e| e.spec.addr())
    }

    pub fn rows(&self) -> Vec<ForwardRow> {
        let entries = self.entries.lock().unwrap();
        let mut rows: Vec<ForwardRow> = entries
            .values()
            .map(|e| ForwardRow {
                sandbox: e.sandbox.clone(),
                bind: e.spec.bind.to_string(),
                host_port: e.spec.host_port,
                sandbox_port: e.spec.sandbox_port,
                pid: std::process::id(),
                state: if e.task.is_finished() {
                    ForwardState::Stale
                } else {
                    ForwardState::Owned
                },
                connections: e.stats.connections.load(Ordering::Relaxed),
                bytes: e.stats.bytes.load(Ordering::Relaxed),
                last_error: e.stats.last_error.lock().unwrap().clone(),
            })
            .collect();
        rows.sort_by_key(|r| r.host_port);
        rows
    }

    /// Stop and forget the forward on `host_port`; true if there was one.
    pub fn stop(&self, bind: IpAddr, host_port: u16) -> bool {
        match self.entries.lock().unwrap().remove(&SocketAddr::new(bind, host_port)) {
            Some(e) => {
                e.task.abort();
                true
            }
            None => false,
        }
    }
}

impl Drop for ForwardRegistry {
    fn drop(&mut self) {
        for entry in self.entries.get_mut().unwrap().values() {
            entry.task.abort();
        }
    }
}

async fn serve(listener: TcpListener, backend: Arc<dyn Backend>, sandbox: String, port: u16, stats: Arc<ForwardStats>) {
    loop {
        let (mut client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Accept errors (EMFILE, ...) are transient; back off briefly
                // instead of spinning.
                note_error(&stats, format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let backend = backend.clone();
        let sandbox = sandbox.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let mut upstream = match backend.connect_loopback(&sandbox, port, CONNECT_TIMEOUT).await {
                Ok(s) => s,
                Err(e) => {
                    note_error(&stats, format!("{peer}: cannot reach {sandbox}:{port}: {e}"));
                    return;
                }
            };
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => {
                    stats.bytes.fetch_add(up + down, Ordering::Relaxed);
                }
                Err(e) => note_error(&stats, format!("{peer}: relay: {e}")),
            }
        });
    }
}

fn note_error(stats: &ForwardStats, message: String) {
    tracing::debug!("forward: {message}");
    stats.errors.fetch_add(1, Ordering::Relaxed);
    *stats.last_error.lock().unwrap() = Some(message);
}
