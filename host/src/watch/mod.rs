//! `runner watch` (DESIGN §7): a long-running supervisor that recovers
//! sandboxes as soon as Docker restarts them, with a crash-loop policy.
//!
//! - Selection: containers labelled `runner.plugin=<name>` (settings from
//!   their `runner.<key>` labels), and/or the `[[sandbox]]` list of a config
//!   file ([`config`]).
//! - Triggers: Docker events (`start`, `die`, `kill`, `stop`, `destroy`,
//!   `oom`, `health_status`, `restart`), replayed with `since` after the
//!   stream ends (reconnect with bounded backoff); per sandbox a cheap
//!   liveness check every interval and a full pass on a long, jittered
//!   interval ([`schedule`], [`liveness`]); and a discovery pass (list
//!   containers, off the event loop) every interval (at least 30 s).
//! - One task per sandbox owns its [`policy::Policy`] and
//!   [`schedule::Schedule`] and runs one recover at a time. Two semaphores
//!   bound recovers across sandboxes: urgent work (events, discovery, failed
//!   liveness checks) has `max_concurrent` slots of its own, routine full
//!   passes a smaller budget, so interval work never holds a repair slot.
//!   Recovers run through [`crate::recovery::Engine`] with an in-process
//!   [`ForwardRegistry`] (forwards are served and supervised here; live
//!   detached ones are adopted) and a backend that refuses to start a
//!   stopped container ([`guard::NoStart`]).
//! - Shutdown (SIGTERM/SIGINT): stop taking events, give in-flight recovers
//!   `shutdown_grace` to finish, abandon the rest, close in-process forwards.

pub mod config;
mod guard;
pub mod liveness;
pub mod metrics;
pub mod policy;
pub mod schedule;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::models::{ContainerStateStatusEnum, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audit::AuditLog;
use crate::backend::docker::DockerBackend;
use crate::backend::{Backend, BackendError};
use crate::forward::ForwardRegistry;
use crate::plugins::PluginSource;
use crate::recovery::report::{Action, Mode, Outcome};
use crate::recovery::{Engine, Quiet, RunError, RunRequest};
use crate::runtime::{Plugin, Runtime};

use self::config::{MAX_SANDBOXES, WatchConfig};
use self::liveness::{Armed, Identity};
use self::metrics::Metrics;
use self::policy::{Decision, Lifecycle, Observed, Policy, RunResult, Transition};
use self::schedule::{Due, Schedule, ScheduleConfig};

/// Label naming the plugin of a watched container.
pub const PLUGIN_LABEL: &str = "runner.plugin";
/// Events we subscribe to (REFERENCE §6.4).
const EVENTS: [&str; 8] = [
    "start",
    "die",
    "destroy",
    "oom",
    "health_status",
    "restart",
    "kill",
    "stop",
];
const INSPECT_DEADLINE: Duration = Duration::from_secs(10);
const LIST_DEADLINE: Duration = Duration::from_secs(15);
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// Messages queued per sandbox; triggers beyond this coalesce.
const QUEUE: usize = 32;
/// Distinct plugins loaded at once.
const MAX_PLUGINS: usize = 16;
/// Discovery (a container list) runs every interval, but not more often.
const MIN_DISCOVERY: Duration = Duration::from_secs(30);

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

enum Msg {
    Lifecycle(Lifecycle),
    Probe(&'static str),
    /// The sandbox's plugin or settings changed (new labels on a recreated
    /// container).
    Retarget(Target),
}

struct Worker {
    tx: mpsc::Sender<Msg>,
    handle: JoinHandle<()>,
    /// What the worker was last told to recover with.
    target: Target,
}

struct Shared {
    runtime: Runtime,
    plugins: AsyncMutex<HashMap<String, Arc<Plugin>>>,
    backend: Arc<dyn Backend>,
    client: bollard::Docker,
    forwards: Arc<ForwardRegistry>,
    audit: Arc<AuditLog>,
    metrics: Arc<Metrics>,
    /// Recovers triggered by an event, discovery or a failed liveness check.
    urgent: Semaphore,
    /// Routine full passes: their own, smaller budget.
    routine: Semaphore,
    opts: WatchOptions,
    origin: Instant,
    shutdown: watch::Receiver<bool>,
    /// Per sandbox: the configuration problem last logged at ERROR, so a
    /// bad setting is reported once per change, not on every pass.
    reported: std::sync::Mutex<HashMap<String, String>>,
}

impl Shared {
    /// Log a configuration problem of `sandbox` at ERROR the first time it
    /// is seen (or when it changes), at DEBUG after that.
    fn config_problem(&self, sandbox: &str, problem: String) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.get(sandbox) == Some(&problem) {
            tracing::debug!(sandbox, "still: {problem}");
            return;
        }
        tracing::error!(
            sandbox,
            "{problem}; runner watch leaves this sandbox alone until its settings change"
        );
        reported.insert(sandbox.to_string(), problem);
    }

    fn config_ok(&self, sandbox: &str) {
        self.reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sandbox);
    }

    /// Every `[[sandbox]]` of the config: its plugin loads and its settings
    /// are ones the plugin declares. All problems at once.
    async fn validate_config(&self) -> Result<(), WatchError> {
        let mut problems = Vec::new();
        for entry in &self.opts.config.sandbox {
            match self.plugin(&entry.plugin).await {
                Err(e) => problems.push(format!(
                    "[[sandbox]] {}: plugin {}: {e}",
                    entry.name, entry.plugin
                )),
                Ok(p) => {
                    let set: Vec<(String, String)> = entry
                        .settings
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if let Err(e) =
                        crate::settings::resolve(&p.info.name, &p.info.settings, &[&set])
                    {
                        problems.push(format!("[[sandbox]] {}: {e}", entry.name));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(WatchError::Config(problems))
        }
    }
    /// Policy time: monotonic, since the watcher started.
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn plugin(&self, name: &str) -> Result<Arc<Plugin>, String> {
        let mut plugins = self.plugins.lock().await;
        if let Some(p) = plugins.get(name) {
            return Ok(p.clone());
        }
        if plugins.len() >= MAX_PLUGINS {
            return Err(format!("more than {MAX_PLUGINS} distinct plugins"));
        }
        let source = PluginSource::parse(name).map_err(|e| e.to_string())?;
        let plugin = Arc::new(
            self.runtime
                .load(&source)
                .await
                .map_err(|e| e.to_string())?,
        );
        plugins.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
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
    let client = docker.client().clone();
    let forwards = Arc::new(ForwardRegistry::new());
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(Shared {
        runtime,
        plugins: AsyncMutex::new(HashMap::new()),
        backend: Arc::new(guard::NoStart(docker.clone())),
        client: client.clone(),
        forwards: forwards.clone(),
        audit: Arc::new(AuditLog::open_default()?),
        metrics: metrics.clone(),
        urgent: Semaphore::new(opts.max_concurrent.max(1)),
        routine: Semaphore::new(routine_slots(opts.max_concurrent)),
        origin: Instant::now(),
        shutdown: shutdown.clone(),
        opts,
        reported: std::sync::Mutex::new(HashMap::new()),
    });
    shared.validate_config().await?;
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut shutdown_rx = shutdown.clone();
    let discovery_every = shared.opts.interval.max(MIN_DISCOVERY);
    // Periodic discovery runs in its own task: a container list can take
    // seconds while the engine is busy (it waits on containers that are
    // being stopped), and events must not queue behind it.
    let (found_tx, mut found_rx) = mpsc::channel::<Vec<Target>>(1);
    let mut discovering: Option<JoinHandle<()>> = None;

    // Event filters: server side by type and event; selection client side
    // (config-listed sandboxes need not carry labels).
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            EVENTS.iter().map(|e| e.to_string()).collect(),
        ),
    ]);
    let mut since: Option<(i64, i64)> = None;
    let mut reconnect = RECONNECT_FIRST;
    let mut metrics_task = None;
    let mut metrics_listener = metrics_listener;

    let mut resubscribing = false;

    'outer: loop {
        // Replay from the last event seen or, before any, from the first
        // subscription: an engine that died before sending an event (kill -9)
        // restarts its containers before we are back, and a `since` of "now"
        // at the reconnect would skip exactly those starts.
        let (s, n) = *since.get_or_insert_with(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_secs() as i64, now.as_nanos() as i64)
        });
        let since_arg = format!("{s}.{:09}", n.rem_euclid(1_000_000_000));
        let mut stream = client.events(Some(EventsOptions {
            since: Some(since_arg.clone()),
            until: None,
            filters: Some(filters.clone()),
        }));
        tracing::info!(since = %since_arg, "subscribed to engine events");
        // Events may have been missed (first start, or beyond the 256-event
        // replay buffer): look at every selected container.
        if let Some(targets) = list_targets(&shared.opts.config, &client).await {
            for t in targets {
                ensure_worker(&shared, t, &mut workers);
            }
        }
        if resubscribing {
            // After a gap, probe everything now rather than at the next
            // interval (a start may have fallen out of the replay buffer).
            for w in workers.values() {
                let _ = w.tx.try_send(Msg::Probe("resubscribed"));
            }
        }
        resubscribing = true;
        if let Some(listener) = metrics_listener.take() {
            let addr = listener.local_addr().ok();
            tracing::info!(addr = ?addr, "serving metrics on /metrics");
            metrics_task = Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                forwards.clone(),
                shutdown.clone(),
            )));
        }
        let mut ticker =
            tokio::time::interval_at(Instant::now() + discovery_every, discovery_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown_rx) => break 'outer,
                _ = ticker.tick() => {
                    if discovering.as_ref().is_none_or(|h| h.is_finished()) {
                        let (cfg, client, tx) = (shared.opts.config.clone(), client.clone(), found_tx.clone());
                        discovering = Some(tokio::spawn(async move {
                            if let Some(t) = list_targets(&cfg, &client).await {
                                let _ = tx.send(t).await;
                            }
                        }));
                    }
                }
                Some(targets) = found_rx.recv() => {
                    // A new worker runs a full pass at once; existing ones
                    // keep their schedule.
                    for t in targets {
                        ensure_worker(&shared, t, &mut workers);
                    }
                }
                next = stream.next() => match next {
                    Some(Ok(ev)) => {
                        reconnect = RECONNECT_FIRST;
                        if let (Some(s), Some(n)) = (ev.time, ev.time_nano) {
                            if since.is_some_and(|(_, last)| n <= last) {
                                continue; // replayed twice
                            }
                            since = Some((s, n));
                        }
                        dispatch(&shared, &ev, &mut workers);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "engine event stream failed; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!("engine event stream ended; reconnecting");
                        break;
                    }
                },
            }
        }
        tracing::info!(
            delay_ms = reconnect.as_millis() as u64,
            "waiting before reconnecting to the engine"
        );
        tokio::select! {
            _ = stopped(&mut shutdown_rx) => break 'outer,
            _ = tokio::time::sleep(reconnect) => {}
        }
        reconnect = (reconnect * 2).min(RECONNECT_MAX);
        // Wait for the engine to answer before subscribing again.
        if let Err(e) = tokio::time::timeout(Duration::from_secs(5), client.ping()).await {
            tracing::warn!("engine ping timed out: {e}");
        }
    }

    if let Some(d) = discovering {
        d.abort();
    }
    // Graceful shutdown: no more events; let in-flight recovers finish.
    tracing::info!(
        sandboxes = workers.len(),
        grace_s = shared.opts.shutdown_grace.as_secs_f64(),
        "shutting down: waiting for in-flight repairs"
    );
    let deadline = Instant::now() + shared.opts.shutdown_grace;
    for (name, w) in workers {
        drop(w.tx);
        let abort = w.handle.abort_handle();
        match tokio::time::timeout_at(deadline, w.handle).await {
            Ok(_) => {}
            Err(_) => {
                abort.abort();
                tracing::warn!(sandbox = %name, "repair still running at the shutdown deadline; abandoned");
            }
        }
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    drop(shared);
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

/// The target for a container, if it is selected.
fn select(cfg: &WatchConfig, name: &str, labels: &HashMap<String, String>) -> Option<Target> {
    if let Some(entry) = cfg.sandbox.iter().find(|s| s.name == name) {
        return Some(Target {
            name: name.to_string(),
            plugin: entry.plugin.clone(),
            settings: entry
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    if !cfg.labels || !cfg.required_label_matches(labels) {
        return None;
    }
    let plugin = labels.get(PLUGIN_LABEL).filter(|p| !p.trim().is_empty())?;
    Some(Target {
        name: name.to_string(),
        plugin: plugin.clone(),
        settings: Vec::new(),
    })
}

fn lifecycle_of(action: &str) -> Option<Lifecycle> {
    match action {
        "start" => Some(Lifecycle::Started),
        "die" => Some(Lifecycle::Died),
        "kill" | "stop" => Some(Lifecycle::StopRequested),
        "destroy" => Some(Lifecycle::Destroyed),
        _ => None,
    }
}

fn dispatch(shared: &Arc<Shared>, ev: &EventMessage, workers: &mut HashMap<String, Worker>) {
    if ev.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return;
    }
    let Some(actor) = &ev.actor else { return };
    let attrs = actor.attributes.clone().unwrap_or_default();
    let Some(name) = attrs.get("name").cloned() else {
        return;
    };
    let Some(target) = select(&shared.opts.config, &name, &attrs) else {
        return;
    };
    let action = ev.action.as_deref().unwrap_or("");
    tracing::info!(
        sandbox = %name,
        event = action,
        exit_code = attrs.get("exitCode").map(String::as_str),
        signal = attrs.get("signal").map(String::as_str),
        "engine event"
    );
    let msgs: Vec<Msg> = match action {
        "oom" => vec![],
        "restart" => vec![Msg::Probe("restart")],
        a if a.starts_with("health_status") => {
            if a.contains("unhealthy") {
                vec![Msg::Probe("unhealthy")]
            } else {
                vec![]
            }
        }
        a => lifecycle_of(a).map(Msg::Lifecycle).into_iter().collect(),
    };
    if msgs.is_empty() {
        return;
    }
    let Some(worker) = ensure_worker(shared, target, workers) else {
        return;
    };
    for msg in msgs {
        if worker.tx.try_send(msg).is_err() {
            tracing::warn!(sandbox = %name, "sandbox queue full; event coalesced");
        }
    }
}

fn ensure_worker<'a>(
    shared: &Arc<Shared>,
    target: Target,
    workers: &'a mut HashMap<String, Worker>,
) -> Option<&'a mut Worker> {
    workers.retain(|_, w| !w.handle.is_finished());
    let exists = workers.contains_key(&target.name);
    if !exists {
        if workers.len() >= MAX_SANDBOXES {
            tracing::warn!(sandbox = %target.name, "already watching {MAX_SANDBOXES} sandboxes; ignoring this one");
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let name = target.name.clone();
        tracing::info!(sandbox = %name, plugin = %target.plugin, "watching sandbox");
        let handle = tokio::spawn(worker(shared.clone(), target.clone(), rx));
        workers.insert(name.clone(), Worker { tx, handle, target });
        return workers.get_mut(&name);
    }
    let worker = workers.get_mut(&target.name)?;
    if worker.target != target {
        tracing::info!(sandbox = %target.name, plugin = %target.plugin, "sandbox settings changed");
        if worker.tx.try_send(Msg::Retarget(target.clone())).is_ok() {
            worker.target = target;
        }
    }
    Some(worker)
}

/// Urgent and routine slots: routine full passes get half the urgent
/// budget (at least one).
fn routine_slots(max_concurrent: usize) -> usize {
    (max_concurrent / 2).max(1)
}

/// The selected containers the engine lists (None when it cannot list).
async fn list_targets(cfg: &WatchConfig, client: &bollard::Docker) -> Option<Vec<Target>> {
    let opts = ListContainersOptions {
        all: true,
        ..Default::default()
    };
    let listed = match tokio::time::timeout(LIST_DEADLINE, client.list_containers(Some(opts))).await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list containers");
            return None;
        }
        Err(_) => {
            tracing::warn!("listing containers timed out");
            return None;
        }
    };
    let mut out = Vec::new();
    for c in listed {
        let Some(name) = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
        else {
            continue;
        };
        let labels = c.labels.clone().unwrap_or_default();
        if let Some(target) = select(cfg, &name, &labels) {
            out.push(target);
        }
    }
    Some(out)
}

/// How a full pass ended, for the schedule.
enum Next {
    /// Back on the schedule; `Some`: healthy, with an identity for the
    /// liveness checks.
    Scheduled(Option<Armed>),
    /// The next full pass not before this policy time.
    At(Duration),
    Exit,
}

/// A jitter draw in [0, 1) (the std hasher is randomly keyed per call).
fn jitter_draw() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What a worker knows about its sandbox between passes.
struct WorkerState {
    policy: Policy,
    sched: Schedule,
    identity: Option<Armed>,
    /// The trigger of the pending full pass and when it came (urgent passes
    /// take the urgent slots); `None`: routine.
    pending: Option<(&'static str, Duration)>,
    destroyed: bool,
    /// New settings to use from the next pass on.
    retarget: Option<Target>,
}

impl WorkerState {
    fn on_msg(&mut self, shared: &Shared, name: &str, msg: Msg) {
        let now = shared.now();
        match msg {
            Msg::Lifecycle(l) => {
                self.policy.on_lifecycle(now, l);
                self.destroyed = l == Lifecycle::Destroyed;
                self.identity = None;
                if l == Lifecycle::Started {
                    self.sched.started(now);
                    // A start wins over whatever was pending.
                    self.pending = Some(("start", now));
                } else {
                    // The next full pass tells what is left; nothing to
                    // check cheaply meanwhile.
                    let (at, _) = self.sched.next();
                    self.sched.full_at(at.min(now + shared.opts.interval));
                }
            }
            Msg::Probe("restart") if !self.sched.wants_restart_probe(now) => {
                tracing::debug!(
                    sandbox = name,
                    "restart event right after a start: already handled"
                );
            }
            Msg::Probe(why) => {
                self.identity = None;
                self.sched.trigger(now);
                // A trigger already pending keeps its (first) reason.
                self.pending.get_or_insert((why, now));
            }
            Msg::Retarget(target) => {
                if self.policy.on_settings_changed() {
                    shared.metrics.set_quarantined(name, false);
                    tracing::info!(sandbox = name, "new settings: quarantine lifted");
                }
                self.retarget = Some(target);
                self.identity = None;
                self.sched.trigger(now);
                self.pending.get_or_insert(("settings-changed", now));
            }
        }
    }

    fn liveness(&mut self, shared: &Shared, name: &str) {
        let now = shared.now();
        let verdict = match &mut self.identity {
            Some(id) => {
                let t = std::time::Instant::now();
                let v = id.check(name, &shared.forwards);
                tracing::trace!(
                    sandbox = name,
                    us = t.elapsed().as_micros() as u64,
                    ok = v.is_ok(),
                    "liveness check"
                );
                v
            }
            None => Err("no identity".into()),
        };
        match verdict {
            Ok(()) => self.sched.liveness_done(now, true),
            Err(why) => {
                shared.metrics.decision("liveness-failed");
                tracing::info!(
                    sandbox = name,
                    reason = %why,
                    "liveness check failed; running a full pass"
                );
                self.identity = None;
                self.sched.liveness_done(now, false);
                self.pending.get_or_insert(("liveness", now));
            }
        }
    }
}

async fn worker(shared: Arc<Shared>, target: Target, mut rx: mpsc::Receiver<Msg>) {
    let mut st = WorkerState {
        policy: Policy::new(shared.opts.config.policy.clone()),
        sched: Schedule::new(
            ScheduleConfig {
                liveness: shared.opts.interval,
                full: shared.opts.full_interval,
            },
            shared.now(),
        ),
        identity: None,
        pending: Some(("discovered", shared.now())),
        destroyed: false,
        retarget: None,
    };
    let mut shutdown = shared.shutdown.clone();
    let mut target = target;
    let name_owned = target.name.clone();
    let name = name_owned.as_str();
    let mut closed = false;
    // Messages that arrived during a pass (at most QUEUE).
    let mut deferred: Vec<Msg> = Vec::new();
    loop {
        for m in deferred.drain(..) {
            st.on_msg(&shared, name, m);
        }
        if closed {
            return;
        }
        if let Some(t) = st.retarget.take() {
            target = t;
        }
        let (at, due) = st.sched.next();
        tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => return,
            msg = rx.recv() => {
                match msg {
                    None => return,
                    Some(m) => st.on_msg(&shared, name, m),
                }
                continue;
            }
            _ = tokio::time::sleep_until(shared.origin + at) => {}
        }
        if due == Due::Liveness {
            st.liveness(&shared, name);
            continue;
        }
        let trigger = st.pending.take();
        let queued = trigger.map(|(_, t)| shared.now().saturating_sub(t));
        let reason = trigger.map_or("interval", |(r, _)| r);
        let engaged = AtomicBool::new(false);
        // The pass runs while events keep arriving: a `die` abandons it (the
        // container it works on is gone, and the `start` that follows needs
        // a pass of its own at once); anything else waits for its end.
        let outcome = {
            let pass = step(
                &shared,
                &target,
                &mut st.policy,
                Pass {
                    reason,
                    urgent: trigger.is_some(),
                    queued,
                    destroyed: st.destroyed,
                    engaged: &engaged,
                },
            );
            tokio::pin!(pass);
            loop {
                tokio::select! {
                    biased;
                    next = &mut pass => break Some(next),
                    msg = rx.recv(), if !closed && deferred.len() < QUEUE => match msg {
                        None => closed = true,
                        Some(Msg::Lifecycle(Lifecycle::Died)) => {
                            deferred.push(Msg::Lifecycle(Lifecycle::Died));
                            break None;
                        }
                        Some(m) => deferred.push(m),
                    },
                }
            }
        };
        let now = shared.now();
        match outcome {
            None => {
                st.identity = None;
                let engaged = engaged.load(Ordering::Relaxed);
                if engaged {
                    // It may have mutated: count it as a repair that did not
                    // end healthy, so a container that keeps dying under
                    // repairs still meets the crash-loop policy.
                    st.policy.record(
                        now,
                        RunResult::Repaired {
                            healthy_after: false,
                        },
                    );
                    shared.metrics.decision("abandoned");
                }
                tracing::info!(
                    sandbox = name,
                    trigger = reason,
                    engaged,
                    "the container died during the pass; pass abandoned"
                );
                // The `die` (deferred) schedules what comes next; a `start`
                // gets its own pass at once.
            }
            Some(Next::Scheduled(id)) => {
                st.sched.full_done(now, id.is_some(), jitter_draw());
                st.identity = id;
            }
            Some(Next::At(at)) => {
                st.identity = None;
                st.sched.full_at(at);
            }
            Some(Next::Exit) => {
                tracing::info!(sandbox = name, "sandbox destroyed; no longer watched");
                return;
            }
        }
        // A trigger that arrived while the pass ran keeps its place.
        if let Some((_, t)) = st.pending {
            st.sched.trigger(t.min(now));
        }
    }
}

/// The container's state and, when running, its init's host pid and start
/// time (when this host's /proc shows it).
struct Inspected {
    observed: Observed,
    init: Option<(u32, u64)>,
}

async fn inspect(shared: &Shared, name: &str) -> Result<Inspected, BackendError> {
    let resp = match tokio::time::timeout(
        INSPECT_DEADLINE,
        shared.client.inspect_container(name, None),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => return Err(BackendError::SandboxMissing(name.to_string())),
        Ok(Err(e)) => return Err(BackendError::Failed(e.to_string())),
        Err(_) => {
            return Err(BackendError::Timeout(format!(
                "inspecting '{name}' took longer than {INSPECT_DEADLINE:?}"
            )));
        }
    };
    let state = resp.state.unwrap_or_default();
    let observed = match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => Observed::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => Observed::Restarting,
        _ => Observed::NotRunning,
    };
    let init = state
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0 && observed == Observed::Running)
        .and_then(|p| Some((p, liveness::start_time(&format!("/proc/{p}/stat"))?)));
    Ok(Inspected { observed, init })
}

/// One full pass's circumstances.
struct Pass<'a> {
    reason: &'static str,
    /// Triggered (event, discovery, failed check): urgent slots.
    urgent: bool,
    /// Trigger → pass start.
    queued: Option<Duration>,
    destroyed: bool,
    /// Set once the recover engine runs (it may mutate from then on).
    engaged: &'a AtomicBool,
}

async fn step(shared: &Shared, target: &Target, policy: &mut Policy, pass: Pass<'_>) -> Next {
    let Pass {
        reason,
        urgent,
        queued,
        destroyed,
        engaged,
    } = pass;
    let later = Next::Scheduled(None);
    let name = target.name.as_str();
    let t0 = Instant::now();
    let inspected = match inspect(shared, name).await {
        Ok(i) => i,
        Err(BackendError::SandboxMissing(_)) if destroyed => return Next::Exit,
        Err(BackendError::SandboxMissing(_)) => Inspected {
            observed: Observed::NotRunning,
            init: None,
        },
        Err(e) => {
            tracing::warn!(sandbox = name, error = %e, "cannot inspect; will retry");
            return later;
        }
    };
    let inspect_ms = t0.elapsed().as_millis() as u64;
    let decision = policy.decide(shared.now(), inspected.observed);
    // An operator's stop → start may have lifted a quarantine.
    shared
        .metrics
        .set_quarantined(name, policy.is_quarantined());
    match decision {
        Decision::Skip(why) => {
            shared.metrics.decision("skip");
            tracing::info!(
                sandbox = name,
                trigger = reason,
                decision = "skip",
                reason = why.as_str(),
                "policy decision"
            );
            later
        }
        Decision::Defer { at } => {
            shared.metrics.decision("defer");
            let wait = at.saturating_sub(shared.now());
            tracing::info!(
                sandbox = name,
                trigger = reason,
                decision = "defer",
                round = policy.round(),
                wait_s = wait.as_secs_f64(),
                "policy decision: crash-loop backoff"
            );
            Next::At(at)
        }
        Decision::Repair => {
            let timing = Timing {
                queued_ms: queued.map(|q| q.as_millis() as u64),
                inspect_ms,
            };
            let how = How {
                reason,
                urgent,
                timing,
                engaged,
            };
            repair(shared, target, policy, how, inspected.init).await
        }
    }
}

/// Where the time before a recover went, for the log.
struct Timing {
    /// Trigger (event, failed check) → this pass started.
    queued_ms: Option<u64>,
    inspect_ms: u64,
}

struct How<'a> {
    reason: &'static str,
    urgent: bool,
    timing: Timing,
    engaged: &'a AtomicBool,
}

async fn repair(
    shared: &Shared,
    target: &Target,
    policy: &mut Policy,
    how: How<'_>,
    init: Option<(u32, u64)>,
) -> Next {
    let How {
        reason,
        urgent,
        timing,
        engaged,
    } = how;
    let interval = shared.opts.interval;
    let later = Next::Scheduled(None);
    let name = target.name.as_str();
    let mut shutdown = shared.shutdown.clone();
    let waited = Instant::now();
    let slots = if urgent {
        &shared.urgent
    } else {
        &shared.routine
    };
    let _permit = tokio::select! {
        _ = stopped(&mut shutdown) => return later,
        p = slots.acquire() => match p {
            Ok(p) => p,
            Err(_) => return later,
        },
    };
    let permit_ms = waited.elapsed().as_millis() as u64;
    if shared.shutting_down() {
        return later;
    }
    let plugin = match shared.plugin(&target.plugin).await {
        Ok(p) => p,
        Err(e) => {
            shared.config_problem(name, format!("cannot load plugin {}: {e}", target.plugin));
            return later;
        }
    };
    engaged.store(true, Ordering::Relaxed);
    tracing::info!(
        sandbox = name,
        trigger = reason,
        slot = if urgent { "urgent" } else { "routine" },
        "recover started"
    );
    let engine = Engine {
        runtime: &shared.runtime,
        backend: shared.backend.clone(),
        forwards: shared.forwards.clone(),
        audit: Some(shared.audit.clone()),
        progress: &Quiet,
    };
    let report = match engine
        .run(RunRequest {
            plugin: &plugin,
            sandbox: name,
            mode: Mode::Recover,
            cli_settings: &target.settings,
            timeout: shared.opts.timeout,
        })
        .await
    {
        Ok(r) => {
            shared.config_ok(name);
            r
        }
        Err(RunError::Lock(e)) => {
            tracing::warn!(sandbox = name, "cannot lock the sandbox for a recover: {e}");
            return later;
        }
        Err(e) => {
            shared.config_problem(name, format!("configuration error: {e}"));
            return later;
        }
    };
    shared
        .metrics
        .probe(Duration::from_millis(report.duration_ms));
    for link in &report.links {
        let result = match link.action {
            Action::Repaired => "repaired",
            Action::Failed => "failed",
            Action::Refused => "refused",
            Action::None | Action::Skipped => continue,
        };
        shared.metrics.repair(name, &link.id, result);
    }
    let healthy = matches!(report.outcome, Outcome::Healthy | Outcome::Recovered);
    let result = if report.deterministic.is_some() {
        RunResult::Deterministic
    } else if !report.mutations.is_empty() {
        RunResult::Repaired {
            healthy_after: healthy,
        }
    } else if healthy {
        RunResult::Healthy
    } else {
        RunResult::Inconclusive
    };
    let outcome = format!("{:?}", report.outcome).to_lowercase();
    // What the liveness checks will look at until the next full pass (none:
    // full passes every interval instead). Armed once here: the listen
    // probe's socket is made in the sandbox's namespace now (a short thread)
    // and reused by every tick until the identity is dropped.
    let identity = init
        .and_then(|(pid, start)| Identity::from_report(&report, pid, start))
        .map(|id| Armed::arm(id, name))
        .and_then(|mut id| match id.check(name, &shared.forwards) {
            Ok(()) => Some(id),
            Err(why) => {
                tracing::debug!(sandbox = name, reason = %why, "the evidence's identity does not check out");
                None
            }
        });
    shared.metrics.decision(match result {
        RunResult::Healthy => "probe-healthy",
        RunResult::Repaired { .. } => "repair",
        RunResult::Inconclusive => "inconclusive",
        RunResult::Deterministic => "refused-until-change",
    });
    tracing::info!(
        sandbox = name,
        trigger = reason,
        decision = "recover",
        outcome = %outcome,
        mutations = report.mutations.len(),
        failing_layer = report.failing_layer.as_deref(),
        ms = report.duration_ms,
        queued_ms = timing.queued_ms,
        inspect_ms = timing.inspect_ms,
        slot = if urgent { "urgent" } else { "routine" },
        slot_wait_ms = permit_ms,
        liveness = if identity.is_some() { "armed" } else { "unarmed" },
        message = report.message.as_deref(),
        "recover finished"
    );
    match policy.record(shared.now(), result) {
        Transition::None => {}
        Transition::BackingOff { round, delay } => {
            shared.metrics.decision("backoff");
            tracing::warn!(
                sandbox = name,
                round,
                delay_s = delay.as_secs_f64(),
                repairs_in_window = policy.repairs_in_window(),
                "crash loop: backing off"
            );
        }
        Transition::Quarantined { rounds } => {
            shared.metrics.set_quarantined(name, true);
            tracing::error!(
                severity = "CRITICAL",
                sandbox = name,
                rounds,
                "CRITICAL: sandbox {name} quarantined after a crash loop; runner watch will not repair it again until it is stopped and started by an operator"
            );
        }
        Transition::QuarantinedUntilChange => {
            shared.metrics.set_quarantined(name, true);
            tracing::error!(
                severity = "CRITICAL",
                sandbox = name,
                failing_layer = report.failing_layer.as_deref(),
                cause = report.deterministic.as_deref(),
                "CRITICAL: sandbox {name} quarantined: its {} repair cannot succeed as configured ({}); runner watch retries it when the container starts again or its settings change",
                report.failing_layer.as_deref().unwrap_or("failing"),
                report.message.as_deref().unwrap_or("no detail")
            );
        }
        Transition::Reset => {
            tracing::info!(
                sandbox = name,
                "healthy long enough; crash-loop backoff reset"
            );
        }
    }
    if !policy.is_quarantined() {
        shared.metrics.set_quarantined(name, false);
    }
    // A repair that did not end healthy is retried soon (the policy spaces
    // retries); a healthy sandbox is checked cheaply from now on, when its
    // evidence names what to check.
    if !healthy && matches!(result, RunResult::Repaired { .. }) {
        let soon = interval.min(shared.opts.config.policy.backoff_initial);
        return Next::At(shared.now() + soon);
    }
    Next::Scheduled(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_by_label_and_config() {
        let cfg = WatchConfig::parse(
            "[[sandbox]]\nname = \"listed\"\nplugin = \"hermes\"\nsettings = { port = \"1\" }\n",
        )
        .unwrap();
        let none = HashMap::new();
        let labelled = HashMap::from([(PLUGIN_LABEL.to_string(), "openclaw".to_string())]);
        assert_eq!(select(&cfg, "other", &none), None);
        assert_eq!(
            select(&cfg, "other", &labelled).map(|t| t.plugin),
            Some("openclaw".into())
        );
        let listed = select(&cfg, "listed", &labelled).unwrap();
        assert_eq!(listed.plugin, "hermes");
        assert_eq!(listed.settings, vec![("port".into(), "1".into())]);
        let only_listed = WatchConfig::parse(
            "labels = false\n[[sandbox]]\nname = \"listed\"\nplugin = \"hermes\"\n",
        )
        .unwrap();
        assert_eq!(select(&only_listed, "other", &labelled), None);
        let scoped = WatchConfig::parse("require-label = \"team=a\"\n").unwrap();
        assert_eq!(select(&scoped, "x", &labelled), None);
        let mut team = labelled.clone();
        team.insert("team".into(), "a".into());
        assert!(select(&scoped, "x", &team).is_some());
        team.insert("team".into(), "b".into());
        assert_eq!(select(&scoped, "x", &team), None);
    }

    #[test]
    fn events_map_to_lifecycle() {
        assert_eq!(lifecycle_of("start"), Some(Lifecycle::Started));
        assert_eq!(lifecycle_of("kill"), Some(Lifecycle::StopRequested));
        assert_eq!(lifecycle_of("stop"), Some(Lifecycle::StopRequested));
        assert_eq!(lifecycle_of("die"), Some(Lifecycle::Died));
        assert_eq!(lifecycle_of("destroy"), Some(Lifecycle::Destroyed));
        assert_eq!(lifecycle_of("exec_die"), None);
    }
}
