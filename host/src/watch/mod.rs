//! `runner watch`: a long-running supervisor that recovers sandboxes as
//! soon as the engine restarts them, with a crash-loop policy.
//!
//! - Selection ([`discovery`]): containers labelled `runner.plugin=<name>`
//!   (settings from their `runner.<key>` labels), and/or the `[[sandbox]]`
//!   list of a config file ([`config`]).
//! - Triggers: engine events (`start`, `die`, `kill`, `stop`, `destroy`,
//!   `oom`, `health_status`, `restart`), replayed from the last one seen
//!   after the stream ends (reconnect with bounded backoff, [`events`]);
//!   per sandbox a cheap liveness check every interval and a full pass on a
//!   long, jittered interval ([`schedule`], [`liveness`]); and a discovery
//!   pass (list containers, off the event loop) every interval (at least
//!   30 s) ([`supervisor`]).
//! - One task per sandbox ([`worker`]) owns its [`policy::Policy`] and
//!   [`schedule::Schedule`] and runs one full pass ([`pass`]) at a time. Two
//!   semaphores bound recovers across sandboxes: urgent work (events,
//!   discovery, failed liveness checks) has `max_concurrent` slots of its
//!   own, routine full passes a smaller budget, so interval work never holds
//!   a repair slot. Recovers run through [`crate::recovery::Engine`]
//!   ([`recover`]) with an in-process [`ForwardRegistry`] (forwards are
//!   served and supervised here; live detached ones are adopted) and a
//!   backend that refuses to start a stopped container ([`guard::NoStart`]).
//! - Shutdown (SIGTERM/SIGINT): stop taking events, give in-flight recovers
//!   `shutdown_grace` to finish, abandon the rest, close in-process forwards.

pub mod config;
mod discovery;
mod events;
mod guard;
pub mod liveness;
pub mod metrics;
mod pass;
pub mod policy;
mod recover;
pub mod schedule;
mod supervisor;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::audit::AuditLog;
use crate::backend::BackendError;
use crate::backend::docker::DockerBackend;
use crate::forward::ForwardRegistry;
use crate::runtime::Runtime;

use self::config::WatchConfig;
use self::metrics::Metrics;
use self::recover::EngineRecover;
use self::supervisor::{Watcher, supervise};

/// Label naming the plugin of a watched container.
pub const PLUGIN_LABEL: &str = "runner.plugin";

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Engine(#[from] BackendError),
    /// Configured sandboxes that cannot be recovered as written (exit 2).
    #[error("the watch config cannot be used: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The audit log cannot be written: no repairs unaudited (exit 2).
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditUnusable),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub config: WatchConfig,
    /// Between liveness checks of a sandbox (full passes while no liveness
    /// identity is armed).
    pub interval: Duration,
    /// Mean time between full passes of a healthy sandbox (jittered 0.5–1.5×).
    pub full_interval: Duration,
    /// Urgent recovers (events, failed liveness checks) running at once.
    pub max_concurrent: usize,
    /// Deadline of one recover.
    pub timeout: Duration,
    pub shutdown_grace: Duration,
}

/// One watched sandbox and how to recover it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    name: String,
    plugin: String,
    settings: Vec<(String, String)>,
}

/// Resolves once `rx` turns true (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A bound, not yet serving, metrics listener (bind errors are usage errors).
pub async fn bind_metrics(addr: SocketAddr) -> Result<TcpListener, WatchError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| WatchError::Metrics { addr, source })
}

/// Watch until `shutdown` turns true. The metrics listener starts serving
/// once the event stream is subscribed and the first discovery pass ran, so
/// a scrape that answers means the watcher is ready.
pub async fn run(
    runtime: Runtime,
    docker: DockerBackend,
    opts: WatchOptions,
    metrics_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WatchError> {
    let docker = Arc::new(docker);
    let forwards = Arc::new(ForwardRegistry::new());
    let metrics = Arc::new(Metrics::default());
    let recover = EngineRecover::new(
        runtime,
        Arc::new(guard::NoStart(docker.clone())),
        forwards.clone(),
        Arc::new(AuditLog::open_default()?),
        metrics.clone(),
        opts.timeout,
    );
    recover
        .validate(&opts.config)
        .await
        .map_err(WatchError::Config)?;
    let watcher = Arc::new(Watcher::new(
        docker,
        Arc::new(recover),
        forwards.clone(),
        metrics.clone(),
        opts,
        shutdown.clone(),
    ));
    let (ready_tx, ready_rx) = oneshot::channel();
    let metrics_task = metrics_listener.map(|listener| {
        let (metrics, forwards, shutdown) = (metrics.clone(), forwards.clone(), shutdown.clone());
        tokio::spawn(async move {
            if ready_rx.await.is_err() {
                return;
            }
            let addr = listener.local_addr().ok();
            tracing::info!(addr = ?addr, "serving metrics on /metrics");
            metrics::serve(listener, metrics, forwards, shutdown).await;
        })
    });
    supervise(watcher, Some(ready_tx)).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    // In-process forwards close with the last reference to the registry
    // (detached forwards that were adopted keep running on their own).
    let owned = forwards.rows().await.len();
    drop(forwards);
    tracing::info!(
        forwards = owned,
        "shutdown complete; in-process forwards closed"
    );
    Ok(())
}
