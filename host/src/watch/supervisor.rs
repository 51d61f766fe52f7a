//! The event loop of `runner watch`: follow the engine's events, discover
//! sandboxes periodically (off the loop), keep one worker per selected
//! sandbox and hand each event to its worker. Engine-neutral: it sees the
//! engine through [`Discovery`] and recovers through [`Recover`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::events::{Discovery, EngineEvent};
use crate::forward::ForwardRegistry;

use super::config::MAX_SANDBOXES;
use super::discovery::{list_targets, select};
use super::events::{Subscription, messages_for};
use super::metrics::Metrics;
use super::pass::Recover;
use super::worker::{Msg, QUEUE, worker};
use super::{Target, WatchOptions, stopped};

/// Discovery (a container list) runs every interval, but not more often.
const MIN_DISCOVERY: Duration = Duration::from_secs(30);

/// What every worker shares.
pub(super) struct Watcher {
    pub engine: Arc<dyn Discovery>,
    pub recover: Arc<dyn Recover>,
    pub forwards: Arc<ForwardRegistry>,
    pub metrics: Arc<Metrics>,
    /// Recovers triggered by an event, discovery or a failed liveness check.
    pub urgent: Semaphore,
    /// Routine full passes: their own, smaller budget.
    pub routine: Semaphore,
    pub opts: WatchOptions,
    pub origin: Instant,
    pub shutdown: watch::Receiver<bool>,
}

impl Watcher {
    pub fn new(
        engine: Arc<dyn Discovery>,
        recover: Arc<dyn Recover>,
        forwards: Arc<ForwardRegistry>,
        metrics: Arc<Metrics>,
        opts: WatchOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            engine,
            recover,
            forwards,
            metrics,
            urgent: Semaphore::new(opts.max_concurrent.max(1)),
            routine: Semaphore::new(routine_slots(opts.max_concurrent)),
            opts,
            origin: Instant::now(),
            shutdown,
        }
    }

    /// Policy time: monotonic, since the watcher started.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Urgent and routine slots: routine full passes get half the urgent
/// budget (at least one).
fn routine_slots(max_concurrent: usize) -> usize {
    (max_concurrent / 2).max(1)
}

struct Worker {
    tx: mpsc::Sender<Msg>,
    handle: JoinHandle<()>,
    /// What the worker was last told to recover with.
    target: Target,
}

/// The workers, one per watched sandbox.
struct Workers {
    watcher: Arc<Watcher>,
    by_name: HashMap<String, Worker>,
}

impl Workers {
    fn ensure(&mut self, target: Target) -> Option<&mut Worker> {
        self.by_name.retain(|_, w| !w.handle.is_finished());
        if !self.by_name.contains_key(&target.name) {
            if self.by_name.len() >= MAX_SANDBOXES {
                tracing::warn!(sandbox = %target.name, "already watching {MAX_SANDBOXES} sandboxes; ignoring this one");
                return None;
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            let name = target.name.clone();
            tracing::info!(sandbox = %name, plugin = %target.plugin, "watching sandbox");
            let handle = tokio::spawn(worker(self.watcher.clone(), target.clone(), rx));
            self.by_name
                .insert(name.clone(), Worker { tx, handle, target });
            return self.by_name.get_mut(&name);
        }
        let worker = self.by_name.get_mut(&target.name)?;
        if worker.target != target {
            tracing::info!(sandbox = %target.name, plugin = %target.plugin, "sandbox settings changed");
            if worker.tx.try_send(Msg::Retarget(target.clone())).is_ok() {
                worker.target = target;
            }
        }
        Some(worker)
    }

    /// A new worker runs a full pass at once; existing ones keep their
    /// schedule.
    fn found(&mut self, targets: Vec<Target>) {
        for t in targets {
            self.ensure(t);
        }
    }

    fn dispatch(&mut self, ev: &EngineEvent) {
        let Some(target) = select(&self.watcher.opts.config, &ev.sandbox, &ev.attributes) else {
            return;
        };
        tracing::info!(
            sandbox = %ev.sandbox,
            event = ev.action.as_str(),
            exit_code = ev.attributes.get("exitCode").map(String::as_str),
            signal = ev.attributes.get("signal").map(String::as_str),
            "engine event"
        );
        let msgs = messages_for(&ev.action);
        if msgs.is_empty() {
            return;
        }
        let Some(worker) = self.ensure(target) else {
            return;
        };
        for msg in msgs {
            if worker.tx.try_send(msg).is_err() {
                tracing::warn!(sandbox = %ev.sandbox, "sandbox queue full; event coalesced");
            }
        }
    }

    /// After a gap, probe everything now rather than at the next interval
    /// (a start may have fallen out of the replay buffer).
    fn probe_all(&self, why: &'static str) {
        for w in self.by_name.values() {
            let _ = w.tx.try_send(Msg::Probe(why));
        }
    }

    /// No more messages; let in-flight recovers finish within the grace.
    async fn drain(self) {
        let grace = self.watcher.opts.shutdown_grace;
        tracing::info!(
            sandboxes = self.by_name.len(),
            grace_s = grace.as_secs_f64(),
            "shutting down: waiting for in-flight repairs"
        );
        let deadline = Instant::now() + grace;
        for (name, w) in self.by_name {
            drop(w.tx);
            let abort = w.handle.abort_handle();
            if tokio::time::timeout_at(deadline, w.handle).await.is_err() {
                abort.abort();
                tracing::warn!(sandbox = %name, "repair still running at the shutdown deadline; abandoned");
            }
        }
    }
}

/// Follow the engine until shutdown, then drain the workers. `ready` is
/// told once the event stream is subscribed and the first discovery ran.
pub(super) async fn supervise(watcher: Arc<Watcher>, ready: Option<oneshot::Sender<()>>) {
    let mut ready = ready;
    let mut workers = Workers {
        watcher: watcher.clone(),
        by_name: HashMap::new(),
    };
    let mut shutdown = watcher.shutdown.clone();
    let discovery_every = watcher.opts.interval.max(MIN_DISCOVERY);
    // Periodic discovery runs in its own task: a container list can take
    // seconds while the engine is busy (it waits on containers that are
    // being stopped), and events must not queue behind it.
    let (found_tx, mut found_rx) = mpsc::channel::<Vec<Target>>(1);
    let mut discovering: Option<JoinHandle<()>> = None;
    let mut events = Subscription::new(watcher.engine.clone());
    let mut resubscribing = false;

    'outer: loop {
        events.subscribe();
        // Events may have been missed (first start, or beyond the engine's
        // replay buffer): look at every selected sandbox.
        if let Some(targets) = list_targets(&watcher.opts.config, watcher.engine.as_ref()).await {
            workers.found(targets);
        }
        if resubscribing {
            workers.probe_all("resubscribed");
        }
        resubscribing = true;
        if let Some(tx) = ready.take() {
            let _ = tx.send(());
        }
        let mut ticker =
            tokio::time::interval_at(Instant::now() + discovery_every, discovery_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped(&mut shutdown) => break 'outer,
                _ = ticker.tick() => {
                    if discovering.as_ref().is_none_or(|h| h.is_finished()) {
                        let (w, tx) = (watcher.clone(), found_tx.clone());
                        discovering = Some(tokio::spawn(async move {
                            if let Some(t) = list_targets(&w.opts.config, w.engine.as_ref()).await {
                                let _ = tx.send(t).await;
                            }
                        }));
                    }
                }
                Some(targets) = found_rx.recv() => workers.found(targets),
                next = events.next() => match next {
                    Some(ev) => workers.dispatch(&ev),
                    None => break,
                },
            }
        }
        if !events.backoff(&mut shutdown).await {
            break 'outer;
        }
    }
    if let Some(d) = discovering {
        d.abort();
    }
    workers.drain().await;
}
