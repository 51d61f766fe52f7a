//! Prometheus text exposition on `GET /metrics` (opt-in, `--metrics ADDR`),
//! hand-written over a tokio listener: bounded connections, bounded request
//! size, bounded time per connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::stopped;
use crate::forward::{ForwardRegistry, ForwardState};

const BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
const MAX_CONNECTIONS: usize = 16;
const MAX_REQUEST: usize = 8 * 1024;
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Bound on the forward scan a scrape triggers.
const FORWARD_SCAN: Duration = Duration::from_secs(3);
/// At most this many label sets per counter (a bound against label churn).
const MAX_SERIES: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    /// (sandbox, link, result) → count.
    repairs: BTreeMap<(String, String, String), u64>,
    probe_buckets: [u64; BUCKETS.len()],
    probe_count: u64,
    probe_sum: f64,
    quarantined: BTreeMap<String, ()>,
    decisions: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn repair(&self, sandbox: &str, link: &str, result: &str) {
        let mut m = self.lock();
        let key = (sandbox.to_string(), link.to_string(), result.to_string());
        if m.repairs.len() < MAX_SERIES || m.repairs.contains_key(&key) {
            *m.repairs.entry(key).or_default() += 1;
        }
    }

    pub fn probe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut m = self.lock();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                m.probe_buckets[i] += 1;
            }
        }
        m.probe_count += 1;
        m.probe_sum += secs;
    }

    pub fn decision(&self, what: &str) {
        let mut m = self.lock();
        if m.decisions.len() < 64 || m.decisions.contains_key(what) {
            *m.decisions.entry(what.to_string()).or_default() += 1;
        }
    }

    pub fn set_quarantined(&self, sandbox: &str, on: bool) {
        let mut m = self.lock();
        if on {
            if m.quarantined.len() < MAX_SERIES {
                m.quarantined.insert(sandbox.to_string(), ());
            }
        } else {
            m.quarantined.remove(sandbox);
        }
    }

    pub fn quarantined(&self) -> usize {
        self.lock().quarantined.len()
    }

    /// Total repairs recorded for `sandbox` (any link, any result).
    pub fn repairs_of(&self, sandbox: &str) -> u64 {
        self.lock()
            .repairs
            .iter()
            .filter(|((s, _, _), _)| s == sandbox)
            .map(|(_, n)| n)
            .sum()
    }

    /// The exposition text; `forwards` counts forwards per state.
    pub fn render(&self, forwards: &BTreeMap<&'static str, u64>) -> String {
        let m = self.lock();
        let mut out = String::new();
        out.push_str("# HELP runner_repairs_total Link repairs attempted by runner watch.\n");
        out.push_str("# TYPE runner_repairs_total counter\n");
        for ((sandbox, link, result), n) in &m.repairs {
            out.push_str(&format!(
                "runner_repairs_total{{sandbox=\"{}\",link=\"{}\",result=\"{}\"}} {n}\n",
                escape(sandbox),
                escape(link),
                escape(result)
            ));
        }
        out.push_str("# HELP runner_probe_seconds Duration of one probe/recover run.\n");
        out.push_str("# TYPE runner_probe_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "runner_probe_seconds_bucket{{le=\"{le}\"}} {}\n",
                m.probe_buckets[i]
            ));
        }
        out.push_str(&format!(
            "runner_probe_seconds_bucket{{le=\"+Inf\"}} {}\n",
            m.probe_count
        ));
        out.push_str(&format!("runner_probe_seconds_sum {}\n", m.probe_sum));
        out.push_str(&format!("runner_probe_seconds_count {}\n", m.probe_count));
        out.push_str("# HELP runner_forwards Host port forwards by verified state.\n");
        out.push_str("# TYPE runner_forwards gauge\n");
        for state in ["owned", "absent", "stale", "foreign"] {
            out.push_str(&format!(
                "runner_forwards{{state=\"{state}\"}} {}\n",
                forwards.get(state).copied().unwrap_or(0)
            ));
        }
        out.push_str(
            "# HELP runner_quarantined_sandboxes Sandboxes runner watch gave up on (crash loop).\n",
        );
        out.push_str("# TYPE runner_quarantined_sandboxes gauge\n");
        out.push_str(&format!(
            "runner_quarantined_sandboxes {}\n",
            m.quarantined.len()
        ));
        out.push_str("# HELP runner_watch_decisions_total Policy decisions by kind.\n");
        out.push_str("# TYPE runner_watch_decisions_total counter\n");
        for (what, n) in &m.decisions {
            out.push_str(&format!(
                "runner_watch_decisions_total{{decision=\"{}\"}} {n}\n",
                escape(what)
            ));
        }
        out
    }
}

async fn forward_counts(forwards: &ForwardRegistry) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    if let Ok(rows) = tokio::time::timeout(FORWARD_SCAN, forwards.rows()).await {
        for row in rows {
            let state: ForwardState = row.state;
            *counts.entry(state.as_str()).or_default() += 1;
        }
    }
    counts
}

/// Serve until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    forwards: Arc<ForwardRegistry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "metrics: too many connections; dropping one");
            continue;
        };
        let (metrics, forwards) = (metrics.clone(), forwards.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(
                CONNECTION_DEADLINE,
                answer(stream, peer, &metrics, &forwards),
            )
            .await;
        });
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    metrics: &Metrics,
    forwards: &ForwardRegistry,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    tracing::debug!(%peer, method, path, "metrics request");
    match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => {
            let counts = forward_counts(forwards).await;
            respond(&mut stream, "200 OK", &metrics.render(&counts)).await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "not found; try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "").await,
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::default();
        m.repair("sb\"1", "gateway", "repaired");
        m.repair("sb\"1", "gateway", "repaired");
        m.probe(Duration::from_millis(300));
        m.set_quarantined("x", true);
        let text = m.render(&BTreeMap::from([("owned", 2)]));
        assert!(text.contains(
            "runner_repairs_total{sandbox=\"sb\\\"1\",link=\"gateway\",result=\"repaired\"} 2"
        ));
        assert!(text.contains("runner_probe_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("runner_probe_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("runner_probe_seconds_count 1"));
        assert!(text.contains("runner_forwards{state=\"owned\"} 2"));
        assert!(text.contains("runner_forwards{state=\"foreign\"} 0"));
        assert!(text.contains("runner_quarantined_sandboxes 1"));
        assert_eq!(m.repairs_of("sb\"1"), 2);
    }
}
