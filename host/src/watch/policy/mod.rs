//! The crash-loop policy of `runner watch`, as a pure state
//! machine: every input carries the time it happened (`Duration` since an
//! arbitrary origin, monotonic in production, injected in tests), nothing
//! sleeps and nothing reads a clock.
//!
//! Rules, in the order [`Policy::decide`] applies them:
//!
//! 1. A sandbox stopped or killed on purpose (`kill`/`stop` event, then
//!    `die`), or being stopped (a `kill`/`stop` with no `die` yet), or not
//!    running at all with no restart pending, is never repaired. A `start`
//!    ends that (Docker restarts it itself, or an operator did).
//! 2. A quarantined sandbox is never repaired; an operator's stop → start
//!    cycle (or restarting the watcher) lifts the quarantine.
//! 3. Sliding window: at most `max_repairs` repairs in any `window`
//!    (default 5 in 60 s), like systemd's start limit.
//! 4. Once the window has filled, the sandbox is crash-looping: every further
//!    repair waits a geometric delay after the previous one (10 s doubling to
//!    5 min, like the kubelet's CrashLoopBackOff). The loop is forgotten after
//!    `reset_after` (10 min) of healthy probes with no repair.
//! 5. Quarantine (a CRITICAL event and the `runner_quarantined_sandboxes`
//!    metric, raised by the caller) when a repair is still needed after a
//!    round at the maximum delay (the backoff is exhausted), or after
//!    `max_rounds` backoff rounds when configured.
//! 6. A deterministic failure (the launch's program or user does not exist)
//!    is not a crash loop: retrying cannot help, so it quarantines after the
//!    first attempt. Anything that can change the answer lifts that
//!    quarantine: any container start, or new settings for the sandbox.
//!
//! Clock skew: an input older than one already seen (a clock that went
//! backwards, or a stale event) is treated as happening at the newest time
//! seen, the way supervisord treats a `laststart` in the future: the state
//! never jumps back and a delay is never stretched beyond its length.

mod config;
mod crash_loop;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use self::config::{PolicyConfig, PolicyError};
use self::crash_loop::CrashLoop;

/// A container event as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `kill` or `stop`: someone is stopping it on purpose.
    StopRequested,
    /// `die` (or `oom` → `die`).
    Died,
    /// `start` (policy restart, `docker start` or `docker restart`).
    Started,
    /// `destroy`.
    Destroyed,
}

/// What the engine says about the container right before a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Running,
    /// `restarting`: Docker's own policy will start it; its `start` triggers us.
    Restarting,
    /// exited / created / dead / paused / removing / missing.
    NotRunning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    StoppedOnPurpose,
    Stopping,
    NotRunning,
    RestartPending,
    Quarantined,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::StoppedOnPurpose => "stopped-on-purpose",
            SkipReason::Stopping => "stopping",
            SkipReason::NotRunning => "not-running",
            SkipReason::RestartPending => "restart-pending",
            SkipReason::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run a recover now.
    Repair,
    /// Leave it alone.
    Skip(SkipReason),
    /// Crash-looping or window full: ask again at `at`.
    Defer { at: Duration },
}

/// The result of a recover run, as the policy counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// Healthy without any mutation (a probe).
    Healthy,
    /// Something was mutated (repaired or attempted).
    Repaired { healthy_after: bool },
    /// Nothing mutated and not proven healthy (unknown, refused).
    Inconclusive,
    /// The repair cannot succeed until the sandbox or its settings change.
    Deterministic,
}

/// What recording a run led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// The window filled or a round ended broken: backoff round `round`.
    BackingOff {
        round: u32,
        delay: Duration,
    },
    /// Just quarantined: raise the CRITICAL event.
    Quarantined {
        rounds: u32,
    },
    /// Just quarantined after a deterministic failure.
    QuarantinedUntilChange,
    /// Healthy long enough: the crash loop is forgotten.
    Reset,
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Newest time seen; inputs older than this are clamped to it.
    now: Duration,
    crash: CrashLoop,
    quarantined: bool,
    /// The quarantine is for a deterministic failure (lifted by any start
    /// or new settings), not for a crash loop.
    until_change: bool,
    /// A kill/stop was seen at this time and no die yet.
    stop_requested: Option<Duration>,
    /// Died after a kill/stop: stopped on purpose until the next start.
    stopped_on_purpose: bool,
}

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Self {
        Self {
            now: Duration::ZERO,
            crash: CrashLoop::new(cfg),
            quarantined: false,
            until_change: false,
            stop_requested: None,
            stopped_on_purpose: false,
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        self.crash.config()
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    pub fn round(&self) -> u32 {
        self.crash.round()
    }

    /// Repairs currently inside the window.
    pub fn repairs_in_window(&self) -> usize {
        self.crash.repairs_in_window()
    }

    /// Clamp `t` to the newest time seen and advance it.
    fn tick(&mut self, t: Duration) -> Duration {
        if t > self.now {
            self.now = t;
        }
        self.crash.prune(self.now);
        self.now
    }

    pub fn on_lifecycle(&mut self, t: Duration, event: Lifecycle) {
        let now = self.tick(t);
        match event {
            Lifecycle::StopRequested => {
                self.stop_requested = Some(now);
                return;
            }
            Lifecycle::Died => {
                if self.stop_requested.take().is_some() {
                    self.stopped_on_purpose = true;
                }
            }
            Lifecycle::Started => {
                if self.quarantined && (self.stopped_on_purpose || self.until_change) {
                    // An operator stopped and started it again (their call),
                    // or a fresh start may have what was missing.
                    self.lift();
                }
                self.stopped_on_purpose = false;
                self.stop_requested = None;
            }
            Lifecycle::Destroyed => {
                self.stop_requested = None;
                self.stopped_on_purpose = false;
            }
        }
        self.crash.unhealthy();
    }

    fn lift(&mut self) {
        self.quarantined = false;
        self.until_change = false;
        self.crash.forget();
    }

    /// The sandbox's settings (labels, config) changed: a quarantine for a
    /// deterministic failure may no longer hold. Returns whether it lifted.
    pub fn on_settings_changed(&mut self) -> bool {
        if self.quarantined && self.until_change {
            self.lift();
            return true;
        }
        false
    }

    pub fn decide(&mut self, t: Duration, observed: Observed) -> Decision {
        let now = self.tick(t);
        if let Some(at) = self.stop_requested
            && now.saturating_sub(at) >= self.config().stop_grace
        {
            // No die followed: the signal did not stop it.
            self.stop_requested = None;
        }
        match observed {
            Observed::NotRunning if self.stopped_on_purpose => {
                return Decision::Skip(SkipReason::StoppedOnPurpose);
            }
            Observed::NotRunning => return Decision::Skip(SkipReason::NotRunning),
            Observed::Restarting => return Decision::Skip(SkipReason::RestartPending),
            Observed::Running => {}
        }
        if self.stop_requested.is_some() {
            return Decision::Skip(SkipReason::Stopping);
        }
        if self.stopped_on_purpose {
            // Running again without a start event seen (missed in a gap):
            // believe the engine.
            self.stopped_on_purpose = false;
        }
        if self.quarantined {
            return Decision::Skip(SkipReason::Quarantined);
        }
        match self.crash.next_allowed(now) {
            Some(at) => Decision::Defer { at },
            None => Decision::Repair,
        }
    }

    /// Record the result of a run that [`Policy::decide`] allowed.
    pub fn record(&mut self, t: Duration, result: RunResult) -> Transition {
        let now = self.tick(t);
        match result {
            RunResult::Healthy => {
                if self.crash.healthy(now) {
                    Transition::Reset
                } else {
                    Transition::None
                }
            }
            RunResult::Inconclusive => {
                self.crash.unhealthy();
                Transition::None
            }
            RunResult::Deterministic => {
                self.crash.unhealthy();
                self.quarantined = true;
                self.until_change = true;
                Transition::QuarantinedUntilChange
            }
            RunResult::Repaired { healthy_after } => {
                match self.crash.repaired(now, healthy_after) {
                    crash_loop::Step::Calm => Transition::None,
                    crash_loop::Step::Exhausted { rounds } => {
                        self.quarantined = true;
                        Transition::Quarantined { rounds }
                    }
                    crash_loop::Step::BackingOff { round, delay } => {
                        Transition::BackingOff { round, delay }
                    }
                }
            }
        }
    }
}
