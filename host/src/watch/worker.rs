//! One task per watched sandbox: it owns the sandbox's crash-loop policy
//! and schedule, takes the messages the event loop sends it, runs liveness
//! checks and full passes when they are due, one at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::Target;
use super::liveness::Armed;
use super::pass::{Next, PassTrigger, full_pass};
use super::policy::{Lifecycle, Policy, RunResult};
use super::schedule::{Due, Schedule, ScheduleConfig};
use super::stopped;
use super::supervisor::Watcher;

/// Messages queued per sandbox; triggers beyond this coalesce.
pub(super) const QUEUE: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Msg {
    Lifecycle(Lifecycle),
    Probe(&'static str),
    /// The sandbox's plugin or settings changed (new labels on a recreated
    /// container).
    Retarget(Target),
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
    pending: Option<(&'static str, std::time::Duration)>,
    destroyed: bool,
    /// New settings to use from the next pass on.
    retarget: Option<Target>,
}

impl WorkerState {
    fn on_msg(&mut self, w: &Watcher, name: &str, msg: Msg) {
        let now = w.now();
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
                    self.sched.full_at(at.min(now + w.opts.interval));
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
                    w.metrics.set_quarantined(name, false);
                    tracing::info!(sandbox = name, "new settings: quarantine lifted");
                }
                self.retarget = Some(target);
                self.identity = None;
                self.sched.trigger(now);
                self.pending.get_or_insert(("settings-changed", now));
            }
        }
    }

    fn liveness(&mut self, w: &Watcher, name: &str) {
        let now = w.now();
        let verdict = match &mut self.identity {
            Some(id) => {
                let t = std::time::Instant::now();
                let v = id.check(name, &w.forwards);
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
                w.metrics.decision("liveness-failed");
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

    /// A pass ended: put the sandbox back on its schedule. `false`: the
    /// sandbox is gone and the worker ends.
    fn after_pass(
        &mut self,
        w: &Watcher,
        name: &str,
        reason: &'static str,
        outcome: Option<Next>,
        engaged: bool,
    ) -> bool {
        let now = w.now();
        match outcome {
            None => {
                self.identity = None;
                if engaged {
                    // It may have mutated: count it as a repair that did not
                    // end healthy, so a container that keeps dying under
                    // repairs still meets the crash-loop policy.
                    self.policy.record(
                        now,
                        RunResult::Repaired {
                            healthy_after: false,
                        },
                    );
                    w.metrics.decision("abandoned");
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
                self.sched.full_done(now, id.is_some(), jitter_draw());
                self.identity = id;
            }
            Some(Next::At(at)) => {
                self.identity = None;
                self.sched.full_at(at);
            }
            Some(Next::Exit) => {
                tracing::info!(sandbox = name, "sandbox destroyed; no longer watched");
                return false;
            }
        }
        // A trigger that arrived while the pass ran keeps its place.
        if let Some((_, t)) = self.pending {
            self.sched.trigger(t.min(now));
        }
        true
    }
}

pub(super) async fn worker(w: Arc<Watcher>, target: Target, mut rx: mpsc::Receiver<Msg>) {
    let mut st = WorkerState {
        policy: Policy::new(w.opts.config.policy.clone()),
        sched: Schedule::new(
            ScheduleConfig {
                liveness: w.opts.interval,
                full: w.opts.full_interval,
            },
            w.now(),
        ),
        identity: None,
        pending: Some(("discovered", w.now())),
        destroyed: false,
        retarget: None,
    };
    let mut shutdown = w.shutdown.clone();
    let mut target = target;
    let name_owned = target.name.clone();
    let name = name_owned.as_str();
    let mut closed = false;
    // Messages that arrived during a pass (at most QUEUE).
    let mut deferred: Vec<Msg> = Vec::new();
    loop {
        for m in deferred.drain(..) {
            st.on_msg(&w, name, m);
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
                    Some(m) => st.on_msg(&w, name, m),
                }
                continue;
            }
            _ = tokio::time::sleep_until(w.origin + at) => {}
        }
        if due == Due::Liveness {
            st.liveness(&w, name);
            continue;
        }
        let trigger = st.pending.take();
        let trigger = PassTrigger {
            reason: trigger.map_or("interval", |(r, _)| r),
            queued: trigger.map(|(_, t)| w.now().saturating_sub(t)),
        };
        let engaged = AtomicBool::new(false);
        // The pass runs while events keep arriving: a `die` abandons it (the
        // container it works on is gone, and the `start` that follows needs
        // a pass of its own at once); anything else waits for its end.
        let outcome = {
            let pass = full_pass(&w, &target, &mut st.policy, trigger, st.destroyed, &engaged);
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
        let engaged = engaged.load(Ordering::Relaxed);
        if !st.after_pass(&w, name, trigger.reason, outcome, engaged) {
            return;
        }
    }
}
