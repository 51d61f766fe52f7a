//! An engine in memory and a recover that only counts, to drive watch's
//! decisions with tokio's paused clock: no Docker, no plugins, no sleeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::backend::events::{
    Discovery, EngineEvent, EventAction, EventStream, ListedSandbox, SandboxDetail,
};
use crate::backend::{BackendError, SandboxInfo, SandboxState};

use super::Target;
use super::pass::{Recover, RecoverCall, Recovered};
use super::policy::RunResult;

struct Sandbox {
    state: SandboxState,
    labels: HashMap<String, String>,
}

#[derive(Default)]
struct Inner {
    sandboxes: HashMap<String, Sandbox>,
    /// Everything that happened, for replays.
    log: Vec<EngineEvent>,
    /// Open subscriptions; dropped when the connection goes.
    live: Vec<mpsc::UnboundedSender<Result<EngineEvent, BackendError>>>,
    down: bool,
    /// The `since` of every subscription, in order.
    subscriptions: Vec<SystemTime>,
    /// Event times are strictly increasing and after every `since` given.
    last_time: Option<SystemTime>,
}

impl Inner {
    fn stamp(&mut self) -> SystemTime {
        let floor = [self.last_time, self.subscriptions.last().copied()]
            .into_iter()
            .flatten()
            .max()
            .map(|t| t + Duration::from_nanos(1));
        let t = floor.map_or(SystemTime::now(), |f| f.max(SystemTime::now()));
        self.last_time = Some(t);
        t
    }

    fn record(&mut self, name: &str, action: EventAction, at: SystemTime) {
        if let Some(sb) = self.sandboxes.get_mut(name) {
            match action {
                EventAction::Start => sb.state = SandboxState::Running,
                EventAction::Die => sb.state = SandboxState::Exited { exit_code: 137 },
                _ => {}
            }
        }
        let mut attributes = self
            .sandboxes
            .get(name)
            .map(|s| s.labels.clone())
            .unwrap_or_default();
        attributes.insert("name".into(), name.into());
        if action == EventAction::Destroy {
            self.sandboxes.remove(name);
        }
        let ev = EngineEvent {
            at: Some(at),
            sandbox: name.to_string(),
            action,
            attributes,
        };
        self.log.push(ev.clone());
        if !self.down {
            self.live.retain(|tx| tx.send(Ok(ev.clone())).is_ok());
        }
    }
}

/// A [`Discovery`] whose sandboxes, events and connection a test controls.
#[derive(Default)]
pub(super) struct MemoryEngine {
    inner: Mutex<Inner>,
}

impl MemoryEngine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A running sandbox that was there before the watcher.
    pub fn add_running(&self, name: &str, labels: &[(&str, &str)]) {
        self.lock().sandboxes.insert(
            name.to_string(),
            Sandbox {
                state: SandboxState::Running,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    /// `action` happens now (the state follows it).
    pub fn emit(&self, name: &str, action: EventAction) {
        let mut inner = self.lock();
        let at = inner.stamp();
        inner.record(name, action, at);
    }

    /// An event delivered now but stamped `before` the newest one sent.
    pub fn emit_stale(&self, name: &str, action: EventAction, before: Duration) {
        let mut inner = self.lock();
        let at = inner.last_time.unwrap_or_else(SystemTime::now) - before;
        inner.record(name, action, at);
    }

    /// The engine restarts: every subscription ends, `meanwhile` happens
    /// while nobody is subscribed, and the engine answers again.
    pub fn restart(&self, meanwhile: &[(&str, EventAction)]) {
        let mut inner = self.lock();
        inner.live.clear();
        inner.down = true;
        for (name, action) in meanwhile {
            let at = inner.stamp();
            inner.record(name, action.clone(), at);
        }
        inner.down = false;
    }

    pub fn subscriptions(&self) -> Vec<SystemTime> {
        self.lock().subscriptions.clone()
    }

    fn reachable(&self) -> Result<(), BackendError> {
        if self.lock().down {
            return Err(BackendError::EngineUnreachable {
                cause: "the engine in memory is down".into(),
                fix: "wait for the test to bring it back".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Discovery for MemoryEngine {
    async fn list(&self, label: Option<&str>) -> Result<Vec<ListedSandbox>, BackendError> {
        self.reachable()?;
        Ok(self
            .lock()
            .sandboxes
            .iter()
            .filter(|(_, s)| label.is_none_or(|l| s.labels.contains_key(l)))
            .map(|(name, s)| ListedSandbox {
                name: name.clone(),
                labels: s.labels.clone(),
            })
            .collect())
    }

    async fn inspect_detail(&self, sandbox: &str) -> Result<SandboxDetail, BackendError> {
        self.reachable()?;
        let inner = self.lock();
        let sb = inner
            .sandboxes
            .get(sandbox)
            .ok_or_else(|| BackendError::SandboxMissing(sandbox.to_string()))?;
        let mut labels: Vec<(String, String)> = sb.labels.clone().into_iter().collect();
        labels.sort();
        Ok(SandboxDetail {
            info: SandboxInfo {
                id: format!("mem-{sandbox}"),
                name: sandbox.to_string(),
                state: sb.state.clone(),
                labels,
                started_at: None,
            },
            image: Some("memory".into()),
            // No host /proc behind it: liveness stays unarmed.
            init_pid: None,
        })
    }

    fn events_since(&self, since: SystemTime) -> EventStream {
        let mut inner = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        if inner.down {
            let _ = tx.send(Err(BackendError::EngineUnreachable {
                cause: "down".into(),
                fix: "none".into(),
            }));
        } else {
            inner.subscriptions.push(since);
            for ev in inner
                .log
                .iter()
                .filter(|e| e.at.is_some_and(|t| t >= since))
            {
                let _ = tx.send(Ok(ev.clone()));
            }
            inner.live.push(tx);
        }
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.reachable()
    }
}

/// One recover as [`CountingRecover`] saw it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub reason: &'static str,
    /// Paused-clock time it started.
    pub at: Instant,
    /// It ran to its end (false: the pass was abandoned under it).
    pub finished: Arc<AtomicBool>,
}

/// Sets `finished` unless the recover's future is dropped first.
struct Finish(Arc<AtomicBool>, bool);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::SeqCst);
    }
}

/// A [`Recover`] that records its calls and answers with a fixed result;
/// calls can be held until released, to have events arrive mid-pass.
pub(super) struct CountingRecover {
    calls: Mutex<Vec<Call>>,
    result: Mutex<RunResult>,
    /// The next this many calls wait for [`CountingRecover::release`].
    held: AtomicUsize,
    release: Notify,
}

impl CountingRecover {
    pub fn answering(result: RunResult) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            result: Mutex::new(result),
            held: AtomicUsize::new(0),
            release: Notify::new(),
        }
    }

    /// What calls answer from now on.
    pub fn answer(&self, result: RunResult) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = result;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn reasons(&self) -> Vec<&'static str> {
        self.calls().iter().map(|c| c.reason).collect()
    }

    pub fn hold_next(&self, n: usize) {
        self.held.store(n, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.release.notify_waiters();
    }
}

#[async_trait::async_trait]
impl Recover for CountingRecover {
    async fn recover(&self, _target: &Target, call: RecoverCall<'_>) -> Option<Recovered> {
        let finished = Arc::new(AtomicBool::new(false));
        let result = *self.result.lock().unwrap_or_else(|e| e.into_inner());
        let hold = self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let released = self.release.notified();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call {
                reason: call.trigger.reason,
                at: Instant::now(),
                finished: finished.clone(),
            });
        call.engaged.store(true, Ordering::Relaxed);
        let mut guard = Finish(finished, false);
        if hold {
            released.await;
        }
        guard.1 = true;
        drop(guard);
        Some(Recovered {
            result,
            healthy: match result {
                RunResult::Healthy => true,
                RunResult::Repaired { healthy_after } => healthy_after,
                RunResult::Inconclusive | RunResult::Deterministic => false,
            },
            identity: None,
            failing_layer: None,
            deterministic: None,
            message: None,
        })
    }
}
