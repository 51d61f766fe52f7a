//! `runner forward serve`: one forward as a process of its own, started
//! detached by `runner recover` so the forward outlives the command.
//!
//! Order matters: the listener is bound first, then the record is written,
//! so a record never claims a port its writer does not hold (OpenShell#1880
//! proves the listener before writing its PID file for the same reason).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::backend::{Backend, BackendError, ProcessId};

use super::identity::own_identity;
use super::record::{self, ForwardRecord, RecordMode};
use super::relay::{self, ForwardStats, Target};
use super::{ForwardError, ForwardSpec, forwards_dir};

/// Records are refreshed at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// While its counters stand still, a forward re-reads its record (to put
/// back one deleted by hand or clobbered) at most this often: a watcher with
/// 200 idle in-process forwards would otherwise read and parse 100 records
/// a second to learn nothing.
const VERIFY_IDLE_EVERY: Duration = Duration::from_secs(30);
/// Bound on one "does the sandbox still exist" check.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a destroyed sandbox may take to be recreated before the
/// forward gives up (a `docker rm -f` + `run` takes well under a second; a
/// compose recreate that pulls an image can take tens of seconds).
pub const DEFAULT_GONE_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub state_dir: PathBuf,
    pub sandbox: String,
    pub spec: ForwardSpec,
    /// How long the sandbox may be missing (not merely stopped) before the
    /// forward exits with an error.
    pub gone_grace: Duration,
}

/// Keeps a forward's record in step with its counters.
pub(crate) struct Publisher {
    path: PathBuf,
    record: ForwardRecord,
    written: (u64, u64, u64),
    /// When the record on disk was last read back and found to be ours.
    verified: Option<std::time::Instant>,
}

impl Publisher {
    pub(crate) fn new(
        dir: &Path,
        mode: RecordMode,
        id: ProcessId,
        backend: &str,
        sandbox: &str,
        spec: &ForwardSpec,
    ) -> Self {
        let now = crate::time::now_rfc3339();
        Self {
            path: record::record_path(dir, spec.bind, spec.host_port),
            record: ForwardRecord {
                schema: record::RECORD_SCHEMA.into(),
                mode,
                pid: id.pid,
                start_time: id.start_time,
                backend: backend.into(),
                sandbox: sandbox.into(),
                sandbox_port: spec.sandbox_port,
                bind: spec.bind,
                host_port: spec.host_port,
                started_at: now.clone(),
                updated_at: now,
                connections: 0,
                bytes: 0,
                errors: 0,
                last_error: None,
            },
            written: (0, 0, 0),
            verified: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn identity(&self) -> ProcessId {
        self.record.identity()
    }

    pub(crate) fn publish(&self) -> Result<(), ForwardError> {
        record::write_atomic(&self.path, &self.record).map_err(|source| ForwardError::Record {
            path: self.path.clone(),
            source,
        })
    }

    /// Rewrites the record when the counters moved, or when the file is
    /// missing or names someone else (deleted by hand, or clobbered): while
    /// we hold the port, the record must describe us.
    pub(crate) fn refresh(&mut self, stats: &ForwardStats) {
        self.refresh_at(stats, std::time::Instant::now());
    }

    fn refresh_at(&mut self, stats: &ForwardStats, now: std::time::Instant) {
        let (connections, bytes, errors, last_error) = stats.snapshot();
        let counters = (connections, bytes, errors);
        let idle = counters == self.written;
        if idle && self.verified.is_some_and(|t| now - t < VERIFY_IDLE_EVERY) {
            return;
        }
        let ours =
            matches!(record::read(&self.path), Ok(Some(r)) if r.identity() == self.identity());
        if ours && idle {
            self.verified = Some(now);
            return;
        }
        self.record.connections = connections;
        self.record.bytes = bytes;
        self.record.errors = errors;
        self.record.last_error = last_error;
        self.record.updated_at = crate::time::now_rfc3339();
        match self.publish() {
            Ok(()) => {
                self.written = counters;
                self.verified = Some(now);
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    pub(crate) fn withdraw(&self) {
        record::remove_if(&self.path, self.identity());
    }
}

/// Serves until SIGTERM/SIGINT (`Ok`) or until the sandbox has been gone
/// for longer than the grace period (`Err(SandboxGone)`).
pub async fn serve(backend: Arc<dyn Backend>, opts: ServeOptions) -> Result<(), ForwardError> {
    let addr = opts.spec.addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ForwardError::Bind { addr, source })?;
    // Handlers before the record: a SIGTERM from then on always withdraws it.
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| ForwardError::Identity(format!("SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| ForwardError::Identity(format!("SIGINT handler: {e}")))?;
    let dir = forwards_dir(&opts.state_dir);
    crate::safe_fs::ensure_dir(&dir, 0o755).map_err(|e| ForwardError::StateDir {
        path: dir.clone(),
        source: std::io::Error::other(e.problem()),
    })?;
    let me = own_identity()?;
    let stats = Arc::new(ForwardStats::default());
    let mut publisher = Publisher::new(
        &dir,
        RecordMode::Detached,
        me,
        backend.kind(),
        &opts.sandbox,
        &opts.spec,
    );
    publisher.publish()?;
    tracing::info!(
        sandbox = %opts.sandbox,
        listen = %addr,
        sandbox_port = opts.spec.sandbox_port,
        pid = me.pid,
        record = %publisher.path().display(),
        "forward serving"
    );
    let target = Arc::new(Target {
        backend: backend.clone(),
        sandbox: opts.sandbox.clone(),
        port: opts.spec.sandbox_port,
    });
    let accept = tokio::spawn(relay::accept_loop(listener, target, stats.clone()));

    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gone_since: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: stopping the forward on {addr}");
                break Ok(());
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping the forward on {addr}");
                break Ok(());
            }
            _ = tick.tick() => {
                publisher.refresh(&stats);
                match tokio::time::timeout(INSPECT_TIMEOUT, backend.inspect(&opts.sandbox)).await {
                    Ok(Err(BackendError::SandboxMissing(_))) => {
                        let since = *gone_since.get_or_insert_with(|| {
                            tracing::warn!(
                                "sandbox '{}' no longer exists; waiting up to {:?} for it to be recreated",
                                opts.sandbox, opts.gone_grace
                            );
                            tokio::time::Instant::now()
                        });
                        if since.elapsed() >= opts.gone_grace {
                            break Err(ForwardError::SandboxGone {
                                sandbox: opts.sandbox.clone(),
                                addr,
                                gone: since.elapsed(),
                            });
                        }
                    }
                    Ok(Ok(_)) => {
                        if gone_since.take().is_some() {
                            tracing::info!("sandbox '{}' exists again; forwarding to it", opts.sandbox);
                        }
                    }
                    // An unreachable engine says nothing about the sandbox:
                    // an engine restart must not take the forwards down.
                    Ok(Err(e)) => tracing::debug!("cannot inspect sandbox '{}': {e}", opts.sandbox),
                    Err(_) => tracing::debug!("inspecting sandbox '{}' timed out", opts.sandbox),
                }
            }
        }
    };
    accept.abort();
    if let Err(e) = &result {
        tracing::error!("{e}");
    }
    publisher.withdraw();
    tracing::info!(
        connections = stats.connections.load(Ordering::Relaxed),
        bytes = stats.bytes.load(Ordering::Relaxed),
        "forward on {addr} stopped"
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A publisher in a scratch dir that has written its first record at
    /// the returned instant; the dir is removed on drop.
    struct Published {
        dir: PathBuf,
        stats: ForwardStats,
        p: Publisher,
        t0: Instant,
    }

    impl Published {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("runner-publisher-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let spec = ForwardSpec::loopback(18790, 18789);
            let id = ProcessId {
                pid: std::process::id(),
                start_time: 1,
            };
            let mut p = Publisher::new(&dir, RecordMode::InProcess, id, "docker", "sb", &spec);
            let (stats, t0) = (ForwardStats::default(), Instant::now());
            p.refresh_at(&stats, t0);
            assert!(p.path().exists(), "the first refresh writes the record");
            Self { dir, stats, p, t0 }
        }

        fn refresh_after(&mut self, d: Duration) {
            self.p.refresh_at(&self.stats, self.t0 + d);
        }
    }

    impl Drop for Published {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn an_idle_forward_puts_a_deleted_record_back_within_the_idle_verify_period() {
        let mut f = Published::new("idle");
        std::fs::remove_file(f.p.path()).unwrap();
        // Idle: ticks every 2 s do not even read the file...
        f.refresh_after(REFRESH_EVERY);
        f.refresh_after(VERIFY_IDLE_EVERY - Duration::from_millis(1));
        assert!(!f.p.path().exists());
        // ...until the idle verify period has passed.
        f.refresh_after(VERIFY_IDLE_EVERY);
        assert!(f.p.path().exists());
    }

    #[test]
    fn traffic_rewrites_the_record_at_the_next_tick() {
        let mut f = Published::new("busy");
        f.stats.connections.fetch_add(1, Ordering::Relaxed);
        f.stats.bytes.fetch_add(4096, Ordering::Relaxed);
        f.refresh_after(REFRESH_EVERY);
        let r = record::read(f.p.path()).unwrap().unwrap();
        assert_eq!((r.connections, r.bytes), (1, 4096));
    }
}
