//! Host-side port forwards: `<bind>:<host-port>` on the host relayed to
//! 127.0.0.1:<sandbox-port> inside a sandbox (DESIGN §6).
//!
//! Every forward, whoever serves it, publishes an identity record in
//! `<state dir>/forwards/` (see [`record`]). The registry classifies a port
//! from that record *verified* against `/proc` (pid + start time, and the
//! argv of a `runner forward serve` naming this sandbox and port) plus a
//! connect probe:
//!
//! - `owned`: a verified runner forward for this sandbox answers;
//! - `stale`: a record whose process is gone, reused or not answering;
//! - `foreign`: something else listens (its owner is named when `/proc`
//!   shows it), or a runner forward serves another sandbox — never touched;
//! - `absent`: nothing.
//!
//! Two modes ([`ForwardMode`]): a one-shot command (`runner recover`) starts
//! forwards as detached `runner forward serve` processes that outlive it; a
//! long-running one (`runner watch`) serves them in-process, adopting any
//! live detached forward instead of starting a duplicate, and restarts dead
//! ones with [`RestartBackoff`].

mod backoff;
pub(crate) mod identity;
pub mod record;
mod relay;
pub mod serve;
mod spawn;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::backend::{Backend, ProcessId};

pub use backoff::{RestartBackoff, RestartPolicy};
pub use record::{ForwardRecord, RecordMode};
pub use relay::ForwardStats;

use identity::{Liveness, Owner, Terminated};
use serve::{Publisher, REFRESH_EVERY};

/// Upper bound for deciding whether something answers on a port.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Upper bound for finding the owner of a foreign listener (a /proc scan).
const OWNER_SCAN_TIMEOUT: Duration = Duration::from_secs(2);
/// A detached forward must be listening and recorded within this.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// SIGTERM grace before SIGKILL, and the wait after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);
const KILL_WAIT: Duration = Duration::from_secs(2);
/// How long a stopped forward's port may take to be released before we
/// fail closed instead of racing whoever still holds it (NemoClaw waits
/// 3 s for the same reason, REFERENCE §3.9).
const RELEASE_WAIT: Duration = Duration::from_secs(3);
/// How long a recorded forward that is exiting may still hold its port.
const DYING_WAIT: Duration = Duration::from_secs(1);

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

    /// The address the listener binds.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.host_port)
    }

    /// The address a client on this host connects to: a wildcard bind is
    /// reached through loopback.
    pub fn connect_addr(&self) -> SocketAddr {
        let ip = match self.bind {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        SocketAddr::new(ip, self.host_port)
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

impl ForwardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardState::Owned => "owned",
            ForwardState::Absent => "absent",
            ForwardState::Stale => "stale",
            ForwardState::Foreign => "foreign",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    pub state: ForwardState,
    pub spec: ForwardSpec,
    /// The forward's pid when runner owns it (or its stale record names
    /// one); the listener's owner when foreign and visible.
    pub pid: Option<u32>,
    pub evidence: Vec<(String, String)>,
}

impl ForwardStatus {
    pub fn evidence(&self, key: &str) -> Option<&str> {
        self.evidence
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
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
    pub mode: RecordMode,
    pub backend: String,
    pub started_at: String,
    pub connections: u64,
    pub bytes: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

/// How this registry starts forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    /// A detached `runner forward serve` process per forward: for one-shot
    /// commands, whose forwards must outlive them.
    Detached,
    /// Listeners served by this process, restarted with backoff: for a
    /// long-running supervisor (`runner watch`).
    InProcess,
}

#[derive(Debug, Clone)]
pub struct ForwardOptions {
    pub mode: ForwardMode,
    /// Records live in `<state_dir>/forwards/`.
    pub state_dir: PathBuf,
    /// The `runner` binary for detached forwards; default: this executable.
    pub exe: Option<PathBuf>,
    /// `--gone-grace` of detached forwards; default: theirs (60 s).
    pub gone_grace: Option<Duration>,
    pub restart: RestartPolicy,
}

impl ForwardOptions {
    pub fn new(mode: ForwardMode) -> Self {
        Self {
            mode,
            state_dir: crate::paths::state_dir(),
            exe: None,
            gone_grace: None,
            restart: RestartPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("forward state {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write forward record {}: {source}", path.display())]
    Record {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{} forward serve`: {source}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the forward on {addr} exited while starting ({status}): {log}")]
    StartExited {
        addr: SocketAddr,
        status: String,
        log: String,
    },
    #[error("the forward on {addr} was not serving within {} s; its log: {}", waited.as_secs(), log.display())]
    StartTimeout {
        addr: SocketAddr,
        waited: Duration,
        log: PathBuf,
    },
    #[error("{addr} was not released within {} s after stopping the stale forward; refusing to start another", waited.as_secs())]
    NotReleased { addr: SocketAddr, waited: Duration },
    #[error("cannot signal pid {pid}: {cause}")]
    Signal { pid: u32, cause: String },
    #[error("pid {pid} is still alive after SIGKILL")]
    StillAlive { pid: u32 },
    #[error("cannot establish our own process identity: {0}")]
    Identity(String),
    #[error("sandbox '{sandbox}' has been gone for {} s (destroyed and not recreated); stopping the forward on {addr}", gone.as_secs())]
    SandboxGone {
        sandbox: String,
        addr: SocketAddr,
        gone: Duration,
    },
}

/// What `stop` did to one forward.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "result", content = "detail")]
pub enum StopResult {
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL.
    Killed,
    /// Its process was already gone; the record was removed.
    AlreadyGone,
    /// The recorded pid is alive but is not a runner forward for this port
    /// (a forged or corrupted record): not signalled, record removed.
    NotAForward(String),
    /// Served in-process by another runner (`runner watch`): not signalled.
    Refused(String),
    Failed(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StopOutcome {
    pub sandbox: String,
    pub bind: IpAddr,
    pub host_port: u16,
    pub pid: u32,
    #[serde(flatten)]
    pub result: StopResult,
}

/// Everything `status` looked at, so classification is a pure function.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    /// The record on this port: none, unreadable, or parsed.
    pub record: Option<Result<ForwardRecord, String>>,
    /// What became of the recorded process.
    pub liveness: Option<Liveness>,
    /// For an in-process record: the recorded pid holds the listener.
    pub holds_listener: bool,
    /// A TCP connect to the port succeeded.
    pub answers: bool,
    /// The listener's owner, looked up only when nothing verified answers.
    pub owner: Option<Owner>,
}

/// What a record amounts to once checked against `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    Live {
        sandbox: String,
        sandbox_port: u16,
        pid: u32,
    },
    Dead(String),
    None,
}

fn cmdline_text(argv: &[String]) -> String {
    let mut text = argv.join(" ");
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() { "?".into() } else { text }
}

fn verify_claim(spec: &ForwardSpec, obs: &Observation) -> Claim {
    let rec = match &obs.record {
        None => return Claim::None,
        Some(Err(e)) => return Claim::Dead(format!("record unreadable: {e}")),
        Some(Ok(r)) => r,
    };
    let pid = rec.pid;
    match &obs.liveness {
        Some(Liveness::Alive { cmdline }) => match rec.mode {
            RecordMode::Detached => match identity::parse_serve_argv(cmdline) {
                Some(a) if a.bind == spec.bind && a.host_port == spec.host_port => Claim::Live {
                    sandbox: a.sandbox,
                    sandbox_port: a.sandbox_port,
                    pid,
                },
                Some(a) => Claim::Dead(format!(
                    "pid {pid} is a runner forward for {}:{}, not this port",
                    a.bind, a.host_port
                )),
                None => Claim::Dead(format!(
                    "pid {pid} is `{}`, not a runner forward",
                    cmdline_text(cmdline)
                )),
            },
            RecordMode::InProcess if obs.holds_listener => Claim::Live {
                sandbox: rec.sandbox.clone(),
                sandbox_port: rec.sandbox_port,
                pid,
            },
            RecordMode::InProcess => {
                Claim::Dead(format!("pid {pid} no longer holds {}", spec.addr()))
            }
        },
        Some(Liveness::Reused { start_time }) => Claim::Dead(format!(
            "pid {pid} was reused (start time {start_time}, recorded {})",
            rec.start_time
        )),
        Some(Liveness::Zombie) => Claim::Dead(format!("process {pid} exited")),
        Some(Liveness::Gone) | None => Claim::Dead(format!("process {pid} is gone")),
    }
}

/// Whether `classify` will need the listener's owner (a /proc scan).
pub(crate) fn needs_owner(spec: &ForwardSpec, obs: &Observation) -> bool {
    obs.answers && !matches!(verify_claim(spec, obs), Claim::Live { .. })
}

/// The state of `spec` for `sandbox` from what was observed (pure).
pub(crate) fn classify(sandbox: &str, spec: &ForwardSpec, obs: &Observation) -> ForwardStatus {
    let kv = |k: &str, v: String| (k.to_string(), v);
    let mut base = vec![kv("bind", spec.addr().to_string())];
    if let Some(Ok(r)) = &obs.record {
        base.push(kv("record", format!("{} pid {}", mode_name(r.mode), r.pid)));
    }
    let status = |state, pid: Option<u32>, more: Vec<(String, String)>| {
        let mut evidence = base.clone();
        evidence.extend(more);
        ForwardStatus {
            state,
            spec: spec.clone(),
            pid,
            evidence,
        }
    };
    let claim = verify_claim(spec, obs);
    match claim {
        Claim::Live {
            sandbox: other,
            sandbox_port,
            pid,
        } => {
            if other != sandbox {
                return status(
                    ForwardState::Foreign,
                    Some(pid),
                    vec![
                        kv("forwarded-to", other),
                        kv(
                            "owner",
                            format!("runner forward pid {pid} of another sandbox"),
                        ),
                    ],
                );
            }
            if sandbox_port != spec.sandbox_port {
                return status(
                    ForwardState::Stale,
                    Some(pid),
                    vec![kv("target-port", sandbox_port.to_string())],
                );
            }
            if !obs.answers {
                return status(
                    ForwardState::Stale,
                    Some(pid),
                    vec![kv(
                        "process",
                        format!("pid {pid} is alive but does not accept connections"),
                    )],
                );
            }
            let mut more = vec![kv("process", "alive".into())];
            if let Some(Ok(r)) = &obs.record {
                more.push(kv("connections", r.connections.to_string()));
                more.push(kv("bytes", r.bytes.to_string()));
                if let Some(e) = &r.last_error {
                    more.push(kv("last-error", e.clone()));
                }
            }
            status(ForwardState::Owned, Some(pid), more)
        }
        Claim::Dead(_) | Claim::None if obs.answers => {
            let mut more = Vec::new();
            if let Claim::Dead(why) = &claim {
                more.push(kv("stale-record", why.clone()));
            }
            match &obs.owner {
                Some(o) => match identity::parse_serve_argv(&o.cmdline) {
                    // A runner forward for this port whose record is missing
                    // or outdated: its argv proves what it serves, and it
                    // puts its record back within 30 s (idle; at once when
                    // traffic moves its counters, within 2 s).
                    Some(a) if a.bind == spec.bind && a.host_port == spec.host_port => {
                        more.push(kv(
                            "record-note",
                            "missing or outdated (the forward rewrites it)".into(),
                        ));
                        if a.sandbox != sandbox {
                            more.push(kv("forwarded-to", a.sandbox));
                            status(ForwardState::Foreign, Some(o.id.pid), more)
                        } else if a.sandbox_port != spec.sandbox_port {
                            more.push(kv("target-port", a.sandbox_port.to_string()));
                            status(ForwardState::Stale, Some(o.id.pid), more)
                        } else {
                            more.push(kv("process", "alive".into()));
                            status(ForwardState::Owned, Some(o.id.pid), more)
                        }
                    }
                    _ => {
                        more.push(kv("owner-pid", o.id.pid.to_string()));
                        more.push(kv("owner-cmdline", cmdline_text(&o.cmdline)));
                        status(ForwardState::Foreign, Some(o.id.pid), more)
                    }
                },
                None => {
                    more.push(kv(
                        "owner",
                        "not visible (another user's process; run as root to name it)".into(),
                    ));
                    status(ForwardState::Foreign, None, more)
                }
            }
        }
        Claim::Dead(why) => {
            let pid = obs
                .record
                .as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|r| r.pid);
            status(ForwardState::Stale, pid, vec![kv("process", why)])
        }
        Claim::None => status(ForwardState::Absent, None, Vec::new()),
    }
}

fn mode_name(mode: RecordMode) -> &'static str {
    match mode {
        RecordMode::Detached => "detached",
        RecordMode::InProcess => "in-process",
    }
}

pub(crate) fn forwards_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("forwards")
}

/// Accepts `argv` only if it is a `runner forward serve` for `bind:port`.
fn serve_verifier(bind: IpAddr, port: u16) -> impl Fn(&[String]) -> Result<(), String> + Sync {
    move |argv: &[String]| match identity::parse_serve_argv(argv) {
        Some(a) if a.bind == bind && a.host_port == port => Ok(()),
        _ => Err(format!(
            "`{}` is not a runner forward for {bind}:{port}",
            cmdline_text(argv)
        )),
    }
}

/// A forward served by this process.
struct Local {
    sandbox: String,
    spec: ForwardSpec,
    accept: JoinHandle<()>,
    refresh: JoinHandle<()>,
    stats: Arc<ForwardStats>,
    record: PathBuf,
    id: ProcessId,
}

impl Local {
    fn shut(&self) {
        self.accept.abort();
        self.refresh.abort();
        record::remove_if(&self.record, self.id);
    }
}

/// Supervision state of one address in in-process mode.
struct Supervised {
    backoff: RestartBackoff,
    /// The current death was already counted (ensure is called repeatedly
    /// while a restart waits out its delay).
    death_noted: bool,
    /// Bytes the forward had carried when we started or adopted it.
    bytes_at_start: u64,
}

pub struct ForwardRegistry {
    opts: ForwardOptions,
    dir: PathBuf,
    local: Mutex<HashMap<SocketAddr, Local>>,
    supervised: Mutex<HashMap<SocketAddr, Supervised>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for ForwardRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl ForwardRegistry {
    /// In-process forwards, records in the default state dir.
    pub fn new() -> Self {
        Self::with_options(ForwardOptions::new(ForwardMode::InProcess))
    }

    /// Detached forwards (for one-shot commands), default state dir.
    pub fn detached() -> Self {
        Self::with_options(ForwardOptions::new(ForwardMode::Detached))
    }

    pub fn with_options(opts: ForwardOptions) -> Self {
        Self {
            dir: forwards_dir(&opts.state_dir),
            opts,
            local: Mutex::new(HashMap::new()),
            supervised: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> ForwardMode {
        self.opts.mode
    }

    /// `<state dir>/forwards`.
    pub fn records_dir(&self) -> &Path {
        &self.dir
    }

    /// A forward served by this very process (in-process mode).
    fn local_status(&self, sandbox: &str, spec: &ForwardSpec) -> Option<ForwardStatus> {
        let local = lock(&self.local);
        let e = local.get(&spec.addr())?;
        let mut evidence = vec![
            ("bind".to_string(), spec.addr().to_string()),
            ("record".to_string(), format!("in-process pid {}", e.id.pid)),
            (
                "connections".to_string(),
                e.stats.connections.load(Ordering::Relaxed).to_string(),
            ),
            (
                "bytes".to_string(),
                e.stats.bytes.load(Ordering::Relaxed).to_string(),
            ),
        ];
        let state = if e.sandbox != sandbox {
            evidence.push(("forwarded-to".into(), e.sandbox.clone()));
            ForwardState::Foreign
        } else if e.accept.is_finished() {
            evidence.push((
                "process".into(),
                "the in-process listener task ended".into(),
            ));
            ForwardState::Stale
        } else if e.spec.sandbox_port != spec.sandbox_port {
            evidence.push(("target-port".into(), e.spec.sandbox_port.to_string()));
            ForwardState::Stale
        } else {
            ForwardState::Owned
        };
        Some(ForwardStatus {
            state,
            spec: spec.clone(),
            pid: Some(e.id.pid),
            evidence,
        })
    }

    async fn observe(&self, spec: &ForwardSpec) -> Observation {
        let path = record::record_path(&self.dir, spec.bind, spec.host_port);
        let record = record::read(&path).transpose();
        let (liveness, holds_listener) = match &record {
            Some(Ok(r)) => {
                let l = identity::liveness(r.identity());
                let holds = r.mode == RecordMode::InProcess
                    && matches!(l, Liveness::Alive { .. })
                    && identity::holds_listener(r.pid, spec.bind, spec.host_port);
                (Some(l), holds)
            }
            _ => (None, false),
        };
        let mut answering = answers(spec).await;
        if answering && matches!(liveness, Some(Liveness::Zombie)) {
            // A killed multi-threaded forward shows as a zombie leader while
            // its other threads still hold the listener for a moment; let it
            // finish dying rather than mistake its socket for a foreign one.
            answering = !wait_released(spec, DYING_WAIT).await;
        }
        let mut obs = Observation {
            record,
            liveness,
            holds_listener,
            answers: answering,
            owner: None,
        };
        if needs_owner(spec, &obs) {
            let (bind, port) = (spec.bind, spec.host_port);
            let scan = tokio::task::spawn_blocking(move || identity::listener_owner(bind, port));
            obs.owner = tokio::time::timeout(OWNER_SCAN_TIMEOUT, scan)
                .await
                .ok()
                .and_then(|r| r.ok())
                .flatten();
        }
        obs
    }

    /// Classify the host port for `sandbox`.
    pub async fn status(&self, sandbox: &str, spec: &ForwardSpec) -> ForwardStatus {
        if let Some(s) = self.local_status(sandbox, spec) {
            return s;
        }
        classify(sandbox, spec, &self.observe(spec).await)
    }

    /// Make the forward owned: keep (or adopt) a live one, replace a stale
    /// one, start one if absent. A foreign listener is reported, never
    /// touched.
    pub async fn ensure(
        &self,
        backend: Arc<dyn Backend>,
        sandbox: &str,
        spec: &ForwardSpec,
    ) -> Result<ForwardStatus, ForwardError> {
        let addr = spec.addr();
        let (current, obs) = match self.local_status(sandbox, spec) {
            Some(s) => (s, None),
            None => {
                let o = self.observe(spec).await;
                (classify(sandbox, spec, &o), Some(o))
            }
        };
        match current.state {
            ForwardState::Owned => {
                self.note_alive(addr, &current, obs.as_ref());
                return Ok(current);
            }
            ForwardState::Foreign => return Ok(current),
            ForwardState::Stale | ForwardState::Absent => {}
        }
        if let Some(wait) = self.restart_delay(addr, obs.as_ref()) {
            let mut held = current;
            held.evidence
                .push(("restart-in-ms".into(), wait.as_millis().to_string()));
            return Ok(held);
        }
        if current.state == ForwardState::Stale {
            self.clear_stale(sandbox, spec, obs.as_ref()).await?;
            if !wait_released(spec, RELEASE_WAIT).await {
                let now = self.status(sandbox, spec).await;
                if now.state == ForwardState::Foreign {
                    return Ok(now);
                }
                return Err(ForwardError::NotReleased {
                    addr,
                    waited: RELEASE_WAIT,
                });
            }
        }
        let started = match self.opts.mode {
            ForwardMode::Detached => self.start_detached(backend.kind(), sandbox, spec).await,
            ForwardMode::InProcess => self.start_in_process(backend, sandbox, spec).await,
        };
        match &started {
            Ok(s) if s.state == ForwardState::Owned => self.note_started(addr, 0),
            // Losing the port to someone else is reported, not retried.
            Ok(s) if s.state == ForwardState::Foreign => {}
            // A failed start counts as a death, or a supervisor would retry
            // it on every call without backing off.
            _ => self.note_start_failed(addr),
        }
        started
    }

    fn note_start_failed(&self, addr: SocketAddr) {
        if self.opts.mode != ForwardMode::InProcess {
            return;
        }
        let now = Instant::now();
        let mut sup = lock(&self.supervised);
        let s = sup.entry(addr).or_insert_with(|| Supervised {
            backoff: RestartBackoff::new(self.opts.restart),
            death_noted: false,
            bytes_at_start: 0,
        });
        // The death (if any) was counted already; this failure is new.
        s.death_noted = true;
        s.backoff.on_failure(now);
    }

    /// In-process mode: an owned forward (ours or adopted) is supervised
    /// from now on; traffic resets its restart backoff.
    fn note_alive(&self, addr: SocketAddr, status: &ForwardStatus, obs: Option<&Observation>) {
        if self.opts.mode != ForwardMode::InProcess {
            return;
        }
        let bytes = self.bytes_of(addr, obs);
        let mut sup = lock(&self.supervised);
        let s = sup.entry(addr).or_insert_with(|| {
            if status.pid != Some(std::process::id()) {
                tracing::info!(%addr, pid = ?status.pid, "adopting a live detached forward instead of starting another");
            }
            Supervised {
                backoff: RestartBackoff::new(self.opts.restart),
                death_noted: false,
                bytes_at_start: bytes,
            }
        });
        s.death_noted = false;
        if bytes > s.bytes_at_start {
            s.backoff.on_traffic();
            s.bytes_at_start = bytes;
        }
    }

    fn note_started(&self, addr: SocketAddr, bytes: u64) {
        if self.opts.mode != ForwardMode::InProcess {
            return;
        }
        let mut sup = lock(&self.supervised);
        let s = sup.entry(addr).or_insert_with(|| Supervised {
            backoff: RestartBackoff::new(self.opts.restart),
            death_noted: false,
            bytes_at_start: bytes,
        });
        s.death_noted = false;
        s.bytes_at_start = bytes;
    }

    fn bytes_of(&self, addr: SocketAddr, obs: Option<&Observation>) -> u64 {
        if let Some(e) = lock(&self.local).get(&addr) {
            return e.stats.bytes.load(Ordering::Relaxed);
        }
        match obs.and_then(|o| o.record.as_ref()) {
            Some(Ok(r)) => r.bytes,
            _ => 0,
        }
    }

    /// In-process mode: a supervised forward died. Counts the death once
    /// and returns how long the restart must still wait, if at all.
    fn restart_delay(&self, addr: SocketAddr, obs: Option<&Observation>) -> Option<Duration> {
        if self.opts.mode != ForwardMode::InProcess {
            return None;
        }
        let bytes = self.bytes_of(addr, obs);
        let now = Instant::now();
        let mut sup = lock(&self.supervised);
        let s = sup.get_mut(&addr)?;
        if !s.death_noted {
            if bytes > s.bytes_at_start {
                s.backoff.on_traffic();
            }
            s.death_noted = true;
            let at = s.backoff.on_failure(now);
            tracing::warn!(%addr, failures = s.backoff.failures(), "supervised forward died; restart in {:?}", at - now);
        }
        (!s.backoff.may_start(now)).then(|| s.backoff.remaining(now))
    }

    /// Removes what makes the port stale: our own dead in-process entry, the
    /// recorded forward process (terminated by identity, only if it is a
    /// runner forward for this port) and its record.
    async fn clear_stale(
        &self,
        sandbox: &str,
        spec: &ForwardSpec,
        obs: Option<&Observation>,
    ) -> Result<(), ForwardError> {
        let addr = spec.addr();
        if let Some(e) = lock(&self.local).remove(&addr) {
            e.shut();
        }
        let Some(obs) = obs else {
            return Ok(());
        };
        let verify = serve_verifier(spec.bind, spec.host_port);
        let path = record::record_path(&self.dir, spec.bind, spec.host_port);
        match &obs.record {
            Some(Ok(r)) => {
                if r.mode == RecordMode::Detached
                    && matches!(obs.liveness, Some(Liveness::Alive { .. }))
                {
                    let how =
                        identity::terminate(r.identity(), &verify, TERM_GRACE, KILL_WAIT).await?;
                    tracing::info!(%addr, pid = r.pid, "stale forward: {how:?}");
                }
                record::remove_if(&path, r.identity());
            }
            Some(Err(e)) => {
                tracing::warn!(path = %path.display(), "removing an unreadable forward record: {e}");
                if record::read(&path).is_err() {
                    let _ = std::fs::remove_file(&path);
                }
            }
            None => {}
        }
        // A runner forward of this sandbox holding the port without a valid
        // record (e.g. one serving another sandbox port).
        if let Some(o) = &obs.owner
            && let Some(a) = identity::parse_serve_argv(&o.cmdline)
            && a.sandbox == sandbox
            && a.bind == spec.bind
            && a.host_port == spec.host_port
        {
            let how = identity::terminate(o.id, &verify, TERM_GRACE, KILL_WAIT).await?;
            tracing::info!(%addr, pid = o.id.pid, "unrecorded stale forward: {how:?}");
        }
        Ok(())
    }

    async fn start_detached(
        &self,
        backend: &str,
        sandbox: &str,
        spec: &ForwardSpec,
    ) -> Result<ForwardStatus, ForwardError> {
        let addr = spec.addr();
        crate::safe_fs::ensure_dir(&self.dir, 0o755).map_err(|e| ForwardError::StateDir {
            path: self.dir.clone(),
            source: std::io::Error::other(e.problem()),
        })?;
        // /proc/self/exe still runs this binary after a package upgrade or
        // rebuild replaced the file (current_exe() would then name a deleted
        // path that cannot be executed).
        let exe = self
            .opts
            .exe
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        let log = record::log_path(&self.dir, spec.bind, spec.host_port);
        let mut child = spawn::spawn_serve(&spawn::ServeCommand {
            exe: &exe,
            state_dir: &self.opts.state_dir,
            log: &log,
            backend,
            sandbox,
            spec,
            gone_grace: self.opts.gone_grace,
        })?;
        let pid = child.id();
        tracing::info!(sandbox, %addr, pid, log = %log.display(), "started a detached forward");
        let path = record::record_path(&self.dir, spec.bind, spec.host_port);
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(10);
        loop {
            match child.try_wait() {
                Ok(Some(exit)) => {
                    let now = self.status(sandbox, spec).await;
                    // Lost a race for the port: report who has it.
                    if now.state == ForwardState::Foreign {
                        return Ok(now);
                    }
                    return Err(ForwardError::StartExited {
                        addr,
                        status: exit.to_string(),
                        log: spawn::log_tail(&log, 3),
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(pid, "try_wait: {e}"),
            }
            let recorded = matches!(record::read(&path), Ok(Some(r)) if r.pid == pid);
            if recorded && answers(spec).await {
                reap_in_background(child);
                return Ok(self.status(sandbox, spec).await);
            }
            if started.elapsed() >= START_TIMEOUT {
                // Our own unreaped child: its pid cannot have been reused.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ForwardError::StartTimeout {
                    addr,
                    waited: START_TIMEOUT,
                    log,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_millis(250));
        }
    }

    async fn start_in_process(
        &self,
        backend: Arc<dyn Backend>,
        sandbox: &str,
        spec: &ForwardSpec,
    ) -> Result<ForwardStatus, ForwardError> {
        let addr = spec.addr();
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let mut status = self.status(sandbox, spec).await;
                status.evidence.push(("bind-error".into(), e.to_string()));
                if status.state != ForwardState::Owned {
                    status.state = ForwardState::Foreign;
                }
                return Ok(status);
            }
            Err(source) => return Err(ForwardError::Bind { addr, source }),
        };
        crate::safe_fs::ensure_dir(&self.dir, 0o755).map_err(|e| ForwardError::StateDir {
            path: self.dir.clone(),
            source: std::io::Error::other(e.problem()),
        })?;
        let id = identity::own_identity()?;
        let stats = Arc::new(ForwardStats::default());
        let mut publisher = Publisher::new(
            &self.dir,
            RecordMode::InProcess,
            id,
            backend.kind(),
            sandbox,
            spec,
        );
        publisher.publish()?;
        let record = publisher.path().to_path_buf();
        let target = Arc::new(relay::Target {
            backend,
            sandbox: sandbox.to_string(),
            port: spec.sandbox_port,
        });
        let accept = tokio::spawn(relay::accept_loop(listener, target, stats.clone()));
        let refresh = {
            let stats = stats.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REFRESH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    publisher.refresh(&stats);
                }
            })
        };
        let entry = Local {
            sandbox: sandbox.to_string(),
            spec: spec.clone(),
            accept,
            refresh,
            stats,
            record,
            id,
        };
        if let Some(old) = lock(&self.local).insert(addr, entry) {
            old.shut();
        }
        tracing::info!(sandbox, %addr, sandbox_port = spec.sandbox_port, "in-process forward started");
        Ok(self.status(sandbox, spec).await)
    }

    /// The address to reach `sandbox`'s forward on `host_port`, if a
    /// verified runner forward (this process's or a detached one) serves
    /// it. No connect probe: the caller connects right away anyway.
    pub fn forwards_to(&self, sandbox: &str, host_port: u16) -> Option<SocketAddr> {
        if let Some(e) = lock(&self.local).values().find(|e| {
            e.sandbox == sandbox && e.spec.host_port == host_port && !e.accept.is_finished()
        }) {
            return Some(e.spec.connect_addr());
        }
        record::list(&self.dir).into_iter().find_map(|(_, r)| {
            let r = r.ok()?;
            if r.sandbox != sandbox || r.host_port != host_port {
                return None;
            }
            let spec = ForwardSpec {
                host_port,
                sandbox_port: r.sandbox_port,
                bind: r.bind,
            };
            let l = identity::liveness(r.identity());
            let holds = r.mode == RecordMode::InProcess
                && matches!(l, Liveness::Alive { .. })
                && identity::holds_listener(r.pid, r.bind, host_port);
            let obs = Observation {
                record: Some(Ok(r)),
                liveness: Some(l),
                holds_listener: holds,
                answers: true,
                owner: None,
            };
            match verify_claim(&spec, &obs) {
                Claim::Live { sandbox: s, .. } if s == sandbox => Some(spec.connect_addr()),
                _ => None,
            }
        })
    }

    /// Every recorded forward with its verified state, sorted by port.
    pub async fn rows(&self) -> Vec<ForwardRow> {
        let mut rows = Vec::new();
        for (path, r) in record::list(&self.dir) {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(path = %path.display(), "skipping an unreadable forward record: {e}");
                    continue;
                }
            };
            let spec = ForwardSpec {
                host_port: r.host_port,
                sandbox_port: r.sandbox_port,
                bind: r.bind,
            };
            let status = self.status(&r.sandbox, &spec).await;
            let (mut connections, mut bytes, mut errors, mut last_error) =
                (r.connections, r.bytes, r.errors, r.last_error);
            if let Some(e) = lock(&self.local).get(&spec.addr()) {
                (connections, bytes, errors, last_error) = e.stats.snapshot();
            }
            rows.push(ForwardRow {
                sandbox: r.sandbox,
                bind: r.bind.to_string(),
                host_port: r.host_port,
                sandbox_port: r.sandbox_port,
                pid: r.pid,
                state: status.state,
                mode: r.mode,
                backend: r.backend,
                started_at: r.started_at,
                connections,
                bytes,
                errors,
                last_error,
            });
        }
        rows.sort_by(|a, b| (a.host_port, &a.bind).cmp(&(b.host_port, &b.bind)));
        rows
    }

    /// Stop the forward on `bind:host_port`.
    pub async fn stop(&self, bind: IpAddr, host_port: u16) -> Vec<StopOutcome> {
        self.stop_where(|r| r.bind == bind && r.host_port == host_port)
            .await
    }

    /// Stop every forward of `sandbox`.
    pub async fn stop_sandbox(&self, sandbox: &str) -> Vec<StopOutcome> {
        self.stop_where(|r| r.sandbox == sandbox).await
    }

    pub async fn stop_all(&self) -> Vec<StopOutcome> {
        self.stop_where(|_| true).await
    }

    async fn stop_where(&self, select: impl Fn(&ForwardRecord) -> bool) -> Vec<StopOutcome> {
        let mut out = Vec::new();
        for (path, r) in record::list(&self.dir) {
            let Ok(r) = r else { continue };
            if !select(&r) {
                continue;
            }
            let result = self.stop_record(&path, &r).await;
            tracing::info!(sandbox = %r.sandbox, bind = %r.bind, port = r.host_port, pid = r.pid, "stop: {result:?}");
            out.push(StopOutcome {
                sandbox: r.sandbox.clone(),
                bind: r.bind,
                host_port: r.host_port,
                pid: r.pid,
                result,
            });
        }
        out
    }

    async fn stop_record(&self, path: &Path, r: &ForwardRecord) -> StopResult {
        let addr = SocketAddr::new(r.bind, r.host_port);
        let id = r.identity();
        if let Some(e) = lock(&self.local).remove(&addr) {
            e.shut();
            lock(&self.supervised).remove(&addr);
            return StopResult::Terminated;
        }
        let result = match identity::liveness(id) {
            Liveness::Alive { cmdline } if r.mode == RecordMode::InProcess => {
                return StopResult::Refused(format!(
                    "served in-process by pid {} (`{}`); stop that runner instead",
                    r.pid,
                    cmdline_text(&cmdline)
                ));
            }
            Liveness::Alive { .. } => {
                let verify = serve_verifier(r.bind, r.host_port);
                match identity::terminate(id, &verify, TERM_GRACE, KILL_WAIT).await {
                    Ok(Terminated::Term) => StopResult::Terminated,
                    Ok(Terminated::Kill) => StopResult::Killed,
                    Ok(Terminated::AlreadyGone) => StopResult::AlreadyGone,
                    Ok(Terminated::Refused(why)) => StopResult::NotAForward(why),
                    Err(e) => return StopResult::Failed(e.to_string()),
                }
            }
            Liveness::Gone | Liveness::Zombie | Liveness::Reused { .. } => StopResult::AlreadyGone,
        };
        record::remove_if(path, id);
        lock(&self.supervised).remove(&addr);
        if matches!(result, StopResult::Terminated | StopResult::Killed) {
            // The leader exits before its last thread lets go of the socket;
            // "stopped" should mean the port is free (OpenShell reports
            // success ~200 ms before ssh releases it, REFERENCE §3.9).
            let spec = ForwardSpec {
                host_port: r.host_port,
                sandbox_port: r.sandbox_port,
                bind: r.bind,
            };
            if !wait_released(&spec, DYING_WAIT).await {
                tracing::warn!(%addr, pid = r.pid, "the stopped forward's port still answers");
            }
        }
        result
    }
}

impl Drop for ForwardRegistry {
    fn drop(&mut self) {
        // In-process forwards die with us; detached ones are meant to live on.
        for e in self
            .local
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            e.shut();
        }
    }
}

/// Does anything accept a TCP connection on the forward's port?
async fn answers(spec: &ForwardSpec) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(spec.connect_addr())).await,
        Ok(Ok(_))
    )
}

/// Waits (bounded, with backoff) until nothing answers on the port.
async fn wait_released(spec: &ForwardSpec, limit: Duration) -> bool {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if !answers(spec).await {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_millis(200));
    }
}

/// The one-shot command that started a detached forward may live on for a
/// while (or be a test); reap the child when it exits so it never lingers
/// as a zombie that still looks alive to a plain `kill -0`.
fn reap_in_background(mut child: std::process::Child) {
    let spawned = std::thread::Builder::new()
        .name("runner-forward-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = spawned {
        tracing::debug!("cannot start a reaper thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SB: &str = "sb1";

    fn spec() -> ForwardSpec {
        ForwardSpec::loopback(18790, 18789)
    }

    fn rec(mode: RecordMode, sandbox: &str, sandbox_port: u16) -> ForwardRecord {
        ForwardRecord {
            schema: record::RECORD_SCHEMA.into(),
            mode,
            pid: 4242,
            start_time: 1000,
            backend: "docker".into(),
            sandbox: sandbox.into(),
            sandbox_port,
            bind: spec().bind,
            host_port: 18790,
            started_at: String::new(),
            updated_at: String::new(),
            connections: 7,
            bytes: 900,
            errors: 0,
            last_error: None,
        }
    }

    fn serve_argv(sandbox: &str, host_port: u16, sandbox_port: u16) -> Vec<String> {
        format!("/usr/bin/runner forward serve --backend docker --sandbox {sandbox} --host-port {host_port} --sandbox-port {sandbox_port} --bind 127.0.0.1")
            .split(' ')
            .map(str::to_string)
            .collect()
    }

    fn alive(argv: Vec<String>) -> Option<Liveness> {
        Some(Liveness::Alive { cmdline: argv })
    }

    fn obs(
        record: Option<ForwardRecord>,
        liveness: Option<Liveness>,
        answers: bool,
    ) -> Observation {
        Observation {
            record: record.map(Ok),
            liveness,
            holds_listener: false,
            answers,
            owner: None,
        }
    }

    fn owner(pid: u32, argv: &str) -> Option<Owner> {
        Some(Owner {
            id: ProcessId { pid, start_time: 5 },
            cmdline: argv.split(' ').map(str::to_string).collect(),
        })
    }

    #[test]
    fn nothing_recorded_and_nothing_listening_is_absent() {
        let s = classify(SB, &spec(), &obs(None, None, false));
        assert_eq!((s.state, s.pid), (ForwardState::Absent, None));
    }

    #[test]
    fn a_verified_answering_forward_is_owned_with_its_counters() {
        let o = obs(
            Some(rec(RecordMode::Detached, SB, 18789)),
            alive(serve_argv(SB, 18790, 18789)),
            true,
        );
        assert!(!needs_owner(&spec(), &o));
        let s = classify(SB, &spec(), &o);
        assert_eq!((s.state, s.pid), (ForwardState::Owned, Some(4242)));
        assert_eq!(s.evidence("bytes"), Some("900"));
        assert_eq!(s.evidence("record"), Some("detached pid 4242"));
    }

    #[test]
    fn stale_records_say_why() {
        let r = || Some(rec(RecordMode::Detached, SB, 18789));
        let cases = [
            (Some(Liveness::Gone), "process 4242 is gone"),
            (Some(Liveness::Zombie), "process 4242 exited"),
            (
                Some(Liveness::Reused { start_time: 99 }),
                "pid 4242 was reused (start time 99, recorded 1000)",
            ),
            (
                alive(vec!["sleep".into(), "300".into()]),
                "pid 4242 is `sleep 300`, not a runner forward",
            ),
            (
                alive(serve_argv(SB, 9999, 18789)),
                "pid 4242 is a runner forward for 127.0.0.1:9999, not this port",
            ),
        ];
        for (liveness, why) in cases {
            let s = classify(SB, &spec(), &obs(r(), liveness, false));
            assert_eq!(s.state, ForwardState::Stale, "{why}");
            assert_eq!(s.pid, Some(4242));
            assert_eq!(s.evidence("process"), Some(why));
        }
        // Alive and verified, but the port does not answer: wedged.
        let s = classify(
            SB,
            &spec(),
            &obs(r(), alive(serve_argv(SB, 18790, 18789)), false),
        );
        assert_eq!(s.state, ForwardState::Stale);
        assert!(
            s.evidence("process")
                .unwrap()
                .contains("does not accept connections")
        );
        // Ours, but to another sandbox port.
        let s = classify(
            SB,
            &spec(),
            &obs(r(), alive(serve_argv(SB, 18790, 1234)), true),
        );
        assert_eq!(
            (s.state, s.evidence("target-port")),
            (ForwardState::Stale, Some("1234"))
        );
        // Unreadable record.
        let o = Observation {
            record: Some(Err("not a forward record".into())),
            ..Default::default()
        };
        let s = classify(SB, &spec(), &o);
        assert_eq!(s.state, ForwardState::Stale);
        assert!(s.evidence("process").unwrap().contains("unreadable"));
    }

    #[test]
    fn anything_else_listening_is_foreign_and_named() {
        let mut o = obs(None, None, true);
        assert!(needs_owner(&spec(), &o));
        o.owner = owner(777, "python3 -m http.server 18790");
        let s = classify(SB, &spec(), &o);
        assert_eq!((s.state, s.pid), (ForwardState::Foreign, Some(777)));
        assert_eq!(s.evidence("owner-pid"), Some("777"));
        assert_eq!(
            s.evidence("owner-cmdline"),
            Some("python3 -m http.server 18790")
        );
        // A stale record does not make a foreign listener ours.
        let mut o = obs(
            Some(rec(RecordMode::Detached, SB, 18789)),
            Some(Liveness::Gone),
            true,
        );
        o.owner = owner(777, "nc -l 18790");
        let s = classify(SB, &spec(), &o);
        assert_eq!(s.state, ForwardState::Foreign);
        assert_eq!(s.evidence("stale-record"), Some("process 4242 is gone"));
        // Invisible owner.
        let s = classify(SB, &spec(), &obs(None, None, true));
        assert_eq!((s.state, s.pid), (ForwardState::Foreign, None));
        assert!(s.evidence("owner").unwrap().contains("not visible"));
    }

    #[test]
    fn our_forward_for_another_sandbox_is_foreign() {
        let o = obs(
            Some(rec(RecordMode::Detached, "other", 18789)),
            alive(serve_argv("other", 18790, 18789)),
            true,
        );
        let s = classify(SB, &spec(), &o);
        assert_eq!(
            (s.state, s.evidence("forwarded-to")),
            (ForwardState::Foreign, Some("other"))
        );
        // Also when only its argv tells (no record).
        let mut o = obs(None, None, true);
        o.owner = Some(Owner {
            id: ProcessId {
                pid: 55,
                start_time: 1,
            },
            cmdline: serve_argv("other", 18790, 18789),
        });
        let s = classify(SB, &spec(), &o);
        assert_eq!((s.state, s.pid), (ForwardState::Foreign, Some(55)));
    }

    #[test]
    fn an_unrecorded_forward_of_ours_is_recognised_by_its_argv() {
        let mut o = obs(None, None, true);
        o.owner = Some(Owner {
            id: ProcessId {
                pid: 56,
                start_time: 1,
            },
            cmdline: serve_argv(SB, 18790, 18789),
        });
        let s = classify(SB, &spec(), &o);
        assert_eq!((s.state, s.pid), (ForwardState::Owned, Some(56)));
        o.owner.as_mut().unwrap().cmdline = serve_argv(SB, 18790, 1);
        assert_eq!(classify(SB, &spec(), &o).state, ForwardState::Stale);
    }

    #[test]
    fn in_process_records_need_the_socket_not_the_argv() {
        let watch = || alive(vec!["/usr/bin/runner".into(), "watch".into()]);
        let mut o = obs(Some(rec(RecordMode::InProcess, SB, 18789)), watch(), true);
        o.holds_listener = true;
        let s = classify(SB, &spec(), &o);
        assert_eq!((s.state, s.pid), (ForwardState::Owned, Some(4242)));
        o.holds_listener = false;
        o.answers = false;
        let s = classify(SB, &spec(), &o);
        assert_eq!(s.state, ForwardState::Stale);
        assert!(s.evidence("process").unwrap().contains("no longer holds"));
    }

    #[test]
    fn supervised_restarts_count_each_death_once_and_reset_on_traffic() {
        let reg = ForwardRegistry::with_options(ForwardOptions {
            state_dir: std::env::temp_dir().join(format!("runner-sup-{}", std::process::id())),
            ..ForwardOptions::new(ForwardMode::InProcess)
        });
        let addr = spec().addr();
        // Never started here: not supervised, nothing to wait for.
        assert_eq!(reg.restart_delay(addr, None), None);
        reg.note_started(addr, 0);
        // First death: restart at once.
        assert_eq!(reg.restart_delay(addr, None), None);
        reg.note_started(addr, 0);
        // Second death: about a second, and asking again does not count again.
        let wait = reg.restart_delay(addr, None).unwrap();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let again = reg.restart_delay(addr, None).unwrap();
        assert!(again <= wait);
        assert_eq!(lock(&reg.supervised)[&addr].backoff.failures(), 2);
        // A forward that carried traffic before dying starts from scratch.
        reg.note_started(addr, 0);
        let traffic = Observation {
            record: Some(Ok(rec(RecordMode::Detached, SB, 18789))),
            ..Default::default()
        };
        assert_eq!(reg.restart_delay(addr, Some(&traffic)), None);
        // Failed starts count too: no retry on every call.
        let failing = SocketAddr::from(([127, 0, 0, 1], 1));
        reg.note_start_failed(failing);
        assert_eq!(
            reg.restart_delay(failing, None),
            None,
            "first retry is immediate"
        );
        reg.note_start_failed(failing);
        assert!(reg.restart_delay(failing, None).is_some());
        // Detached registries do not supervise.
        let one_shot = ForwardRegistry::with_options(ForwardOptions::new(ForwardMode::Detached));
        one_shot.note_started(addr, 0);
        assert_eq!(one_shot.restart_delay(addr, None), None);
    }

    #[test]
    fn wildcard_binds_are_reached_through_loopback() {
        let s = ForwardSpec {
            host_port: 80,
            sandbox_port: 80,
            bind: "0.0.0.0".parse().unwrap(),
        };
        assert_eq!(s.connect_addr().to_string(), "127.0.0.1:80");
        let s6 = ForwardSpec {
            bind: "::".parse().unwrap(),
            ..s
        };
        assert_eq!(s6.connect_addr().to_string(), "[::1]:80");
    }
}
