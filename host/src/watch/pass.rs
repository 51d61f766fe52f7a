//! One full pass of a sandbox: inspect it, let the policy decide, run a
//! recover when it says so (in an urgent or a routine slot), count the
//! result against the crash-loop policy and say when to look again.
//!
//! The recover itself is behind [`Recover`], so the decisions here can be
//! driven without plugins.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::BackendError;
use crate::backend::SandboxState;

use super::liveness::{self, Armed};
use super::policy::{Decision, Observed, Policy, RunResult, Transition};
use super::supervisor::Watcher;
use super::{Target, stopped};

/// What started a full pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct PassTrigger {
    pub reason: &'static str,
    /// Trigger → pass start; `None` for a routine (scheduled) pass.
    pub queued: Option<Duration>,
}

impl PassTrigger {
    /// Triggered work (an event, discovery, a failed check) takes the
    /// urgent slots.
    fn urgent(&self) -> bool {
        self.queued.is_some()
    }
}

/// How a full pass ended, for the schedule.
pub(super) enum Next {
    /// Back on the schedule; `Some`: healthy, with an identity for the
    /// liveness checks.
    Scheduled(Option<Armed>),
    /// The next full pass not before this policy time.
    At(Duration),
    Exit,
}

/// One recover's circumstances.
pub(super) struct RecoverCall<'a> {
    pub trigger: PassTrigger,
    /// Where the time before the recover went, for its log line.
    pub waited: Waited,
    /// The sandbox's init (host pid, start time) when this host's /proc
    /// shows it: what the liveness checks are anchored to.
    pub init: Option<(u32, u64)>,
    /// To be set once the recover may mutate.
    pub engaged: &'a AtomicBool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Waited {
    pub inspect_ms: u64,
    pub slot_ms: u64,
}

/// What a recover came to, as watch counts it.
#[derive(Debug)]
pub(super) struct Recovered {
    pub result: RunResult,
    pub healthy: bool,
    pub identity: Option<Armed>,
    pub failing_layer: Option<String>,
    /// Why the repair cannot succeed as configured, when it cannot.
    pub deterministic: Option<String>,
    pub message: Option<String>,
}

/// Runs one recover of a sandbox. `None`: it did not run (the plugin does
/// not load, the configuration is refused, the sandbox is locked); the
/// caller comes back on the schedule.
#[async_trait::async_trait]
pub(super) trait Recover: Send + Sync {
    async fn recover(&self, target: &Target, call: RecoverCall<'_>) -> Option<Recovered>;
}

/// The sandbox's state and, when running, its init's host pid and start
/// time.
struct Inspected {
    observed: Observed,
    init: Option<(u32, u64)>,
}

async fn inspect(w: &Watcher, name: &str) -> Result<Inspected, BackendError> {
    let detail = w.engine.inspect_detail(name).await?;
    let observed = match detail.info.state {
        SandboxState::Running => Observed::Running,
        SandboxState::Restarting => Observed::Restarting,
        _ => Observed::NotRunning,
    };
    let init = detail
        .init_pid
        .filter(|_| observed == Observed::Running)
        .and_then(|p| Some((p, liveness::start_time(&format!("/proc/{p}/stat"))?)));
    Ok(Inspected { observed, init })
}

pub(super) async fn full_pass(
    w: &Watcher,
    target: &Target,
    policy: &mut Policy,
    trigger: PassTrigger,
    destroyed: bool,
    engaged: &AtomicBool,
) -> Next {
    let later = Next::Scheduled(None);
    let name = target.name.as_str();
    let reason = trigger.reason;
    let t0 = Instant::now();
    let inspected = match inspect(w, name).await {
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
    let decision = policy.decide(w.now(), inspected.observed);
    // An operator's stop → start may have lifted a quarantine.
    w.metrics.set_quarantined(name, policy.is_quarantined());
    match decision {
        Decision::Skip(why) => {
            w.metrics.decision("skip");
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
            w.metrics.decision("defer");
            let wait = at.saturating_sub(w.now());
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
            let mut shutdown = w.shutdown.clone();
            let waiting = Instant::now();
            let slots = if trigger.urgent() {
                &w.urgent
            } else {
                &w.routine
            };
            let _permit = tokio::select! {
                _ = stopped(&mut shutdown) => return later,
                p = slots.acquire() => match p {
                    Ok(p) => p,
                    Err(_) => return later,
                },
            };
            if w.shutting_down() {
                return later;
            }
            let call = RecoverCall {
                trigger,
                waited: Waited {
                    inspect_ms,
                    slot_ms: waiting.elapsed().as_millis() as u64,
                },
                init: inspected.init,
                engaged,
            };
            match w.recover.recover(target, call).await {
                Some(done) => count(w, name, policy, done),
                None => later,
            }
        }
    }
}

/// Count a recover against the policy and say when to look again.
fn count(w: &Watcher, name: &str, policy: &mut Policy, done: Recovered) -> Next {
    match policy.record(w.now(), done.result) {
        Transition::None => {}
        Transition::BackingOff { round, delay } => {
            w.metrics.decision("backoff");
            tracing::warn!(
                sandbox = name,
                round,
                delay_s = delay.as_secs_f64(),
                repairs_in_window = policy.repairs_in_window(),
                "crash loop: backing off"
            );
        }
        Transition::Quarantined { rounds } => {
            w.metrics.set_quarantined(name, true);
            tracing::error!(
                severity = "CRITICAL",
                sandbox = name,
                rounds,
                "CRITICAL: sandbox {name} quarantined after a crash loop; runner watch will not repair it again until it is stopped and started by an operator"
            );
        }
        Transition::QuarantinedUntilChange => {
            w.metrics.set_quarantined(name, true);
            tracing::error!(
                severity = "CRITICAL",
                sandbox = name,
                failing_layer = done.failing_layer.as_deref(),
                cause = done.deterministic.as_deref(),
                "CRITICAL: sandbox {name} quarantined: its {} repair cannot succeed as configured ({}); runner watch retries it when the container starts again or its settings change",
                done.failing_layer.as_deref().unwrap_or("failing"),
                done.message.as_deref().unwrap_or("no detail")
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
        w.metrics.set_quarantined(name, false);
    }
    // A repair that did not end healthy is retried soon (the policy spaces
    // retries); a healthy sandbox is checked cheaply from now on, when its
    // evidence names what to check.
    if !done.healthy && matches!(done.result, RunResult::Repaired { .. }) {
        let soon = w.opts.interval.min(w.opts.config.policy.backoff_initial);
        return Next::At(w.now() + soon);
    }
    Next::Scheduled(done.identity)
}
