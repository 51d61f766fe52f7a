//! The crash-loop policy of `runner watch` (DESIGN §7), as a pure state
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

use std::collections::VecDeque;
use std::time::Duration;

/// Tunables; [`PolicyConfig::default`] is DESIGN §7.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// At most this many repairs in any `window`.
    pub max_repairs: u32,
    #[serde(with = "secs")]
    pub window: Duration,
    /// First crash-loop delay, doubled per round up to `backoff_max`.
    #[serde(with = "secs")]
    pub backoff_initial: Duration,
    #[serde(with = "secs")]
    pub backoff_max: Duration,
    /// Healthy, unrepaired time after which the crash loop is forgotten.
    #[serde(with = "secs")]
    pub reset_after: Duration,
    /// Quarantine after this many backoff rounds (default: when the backoff
    /// is exhausted).
    pub max_rounds: Option<u32>,
    /// A `kill`/`stop` without a `die` within this is a signal the container
    /// survived (e.g. `docker kill -s HUP`), not a stop in progress.
    #[serde(with = "secs")]
    pub stop_grace: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            max_repairs: 5,
            window: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            max_rounds: None,
            stop_grace: Duration::from_secs(60),
        }
    }
}

/// Durations in config files are seconds (fractions allowed).
mod secs {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
            return Err(serde::de::Error::custom(
                "a duration in seconds between 0 and 86400",
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("max-repairs must be at least 1")]
    NoRepairs,
    #[error("window must be longer than 0 s")]
    NoWindow,
    #[error("backoff-initial must be > 0 and not above backoff-max")]
    Backoff,
    #[error("max-rounds must be at least 1 when set")]
    NoRounds,
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_repairs == 0 || self.max_repairs > 1000 {
            return Err(PolicyError::NoRepairs);
        }
        if self.window.is_zero() {
            return Err(PolicyError::NoWindow);
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return Err(PolicyError::Backoff);
        }
        if self.max_rounds == Some(0) {
            return Err(PolicyError::NoRounds);
        }
        Ok(())
    }

    /// Delay of backoff round `round` (1-based).
    pub fn delay(&self, round: u32) -> Duration {
        let factor = 1u32 << round.saturating_sub(1).min(20);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    /// Rounds until (and including) the first at `backoff_max`.
    pub fn rounds_to_max(&self) -> u32 {
        (1..=64)
            .find(|&r| self.delay(r) >= self.backoff_max)
            .unwrap_or(64)
    }
}

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
    cfg: PolicyConfig,
    /// Newest time seen; inputs older than this are clamped to it.
    now: Duration,
    /// Repair times inside the window (at most `max_repairs`).
    repairs: VecDeque<Duration>,
    /// The last repair (kept after it leaves the window: backoff rounds
    /// outlast it).
    last_repair: Option<Duration>,
    /// Backoff round (0 = not crash-looping).
    round: u32,
    quarantined: bool,
    /// The quarantine is for a deterministic failure (lifted by any start
    /// or new settings), not for a crash loop.
    until_change: bool,
    /// A kill/stop was seen at this time and no die yet.
    stop_requested: Option<Duration>,
    /// Died after a kill/stop: stopped on purpose until the next start.
    stopped_on_purpose: bool,
    /// Since when the sandbox has been healthy without a repair.
    healthy_since: Option<Duration>,
}

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Self {
        Self {
            cfg,
            now: Duration::ZERO,
            repairs: VecDeque::new(),
            last_repair: None,
            round: 0,
            quarantined: false,
            until_change: false,
            stop_requested: None,
            stopped_on_purpose: false,
            healthy_since: None,
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    pub fn round(&self) -> u32 {
        self.round
    }

    /// Repairs currently inside the window.
    pub fn repairs_in_window(&self) -> usize {
        self.repairs.len()
    }

    /// Clamp `t` to the newest time seen and advance it.
    fn tick(&mut self, t: Duration) -> Duration {
        if t > self.now {
            self.now = t;
        }
        self.prune();
        self.now
    }

    fn prune(&mut self) {
        let now = self.now;
        let window = self.cfg.window;
        while let Some(&first) = self.repairs.front() {
            if now.saturating_sub(first) >= window {
                self.repairs.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn on_lifecycle(&mut self, t: Duration, event: Lifecycle) {
        let now = self.tick(t);
        match event {
            Lifecycle::StopRequested => {
                self.stop_requested = Some(now);
            }
            Lifecycle::Died => {
                if self.stop_requested.take().is_some() {
                    self.stopped_on_purpose = true;
                }
                self.healthy_since = None;
            }
            Lifecycle::Started => {
                if self.quarantined && (self.stopped_on_purpose || self.until_change) {
                    // An operator stopped and started it again (their call),
                    // or a fresh start may have what was missing.
                    self.lift();
                }
                self.stopped_on_purpose = false;
                self.stop_requested = None;
                self.healthy_since = None;
            }
            Lifecycle::Destroyed => {
                self.stop_requested = None;
                self.stopped_on_purpose = false;
                self.healthy_since = None;
            }
        }
    }

    fn lift(&mut self) {
        self.quarantined = false;
        self.until_change = false;
        self.round = 0;
        self.repairs.clear();
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

    /// When the next repair may run, ignoring lifecycle (None: now).
    fn next_allowed(&self) -> Option<Duration> {
        let mut at = None;
        if self.repairs.len() >= self.cfg.max_repairs as usize
            && let Some(&first) = self.repairs.front()
        {
            at = Some(first + self.cfg.window);
        }
        if self.round > 0
            && let Some(last) = self.last_repair
        {
            let by_backoff = last + self.cfg.delay(self.round);
            at = Some(at.map_or(by_backoff, |a: Duration| a.max(by_backoff)));
        }
        at.filter(|&a| a > self.now)
    }

    pub fn decide(&mut self, t: Duration, observed: Observed) -> Decision {
        let now = self.tick(t);
        if let Some(at) = self.stop_requested
            && now.saturating_sub(at) >= self.cfg.stop_grace
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
        match self.next_allowed() {
            Some(at) => Decision::Defer { at },
            None => Decision::Repair,
        }
    }

    /// Record the result of a run that [`Policy::decide`] allowed.
    pub fn record(&mut self, t: Duration, result: RunResult) -> Transition {
        let now = self.tick(t);
        match result {
            RunResult::Healthy => {
                let since = *self.healthy_since.get_or_insert(now);
                let last_repair = self.last_repair.unwrap_or(since);
                if self.round > 0
                    && now.saturating_sub(since) >= self.cfg.reset_after
                    && now.saturating_sub(last_repair) >= self.cfg.reset_after
                {
                    self.round = 0;
                    return Transition::Reset;
                }
                Transition::None
            }
            RunResult::Inconclusive => {
                self.healthy_since = None;
                Transition::None
            }
            RunResult::Deterministic => {
                self.healthy_since = None;
                self.quarantined = true;
                self.until_change = true;
                Transition::QuarantinedUntilChange
            }
            RunResult::Repaired { healthy_after } => {
                self.healthy_since = healthy_after.then_some(now);
                self.repairs.push_back(now);
                self.last_repair = Some(now);
                while self.repairs.len() > self.cfg.max_repairs as usize {
                    self.repairs.pop_front();
                }
                let window_full = self.repairs.len() >= self.cfg.max_repairs as usize;
                if self.round == 0 && !window_full {
                    return Transition::None;
                }
                // Crash-looping: a repair during the loop ends the round.
                let exhausted = self.round >= self.cfg.rounds_to_max();
                let capped = self.cfg.max_rounds.is_some_and(|m| self.round >= m);
                if exhausted || capped {
                    self.quarantined = true;
                    return Transition::Quarantined { rounds: self.round };
                }
                self.round += 1;
                Transition::BackingOff {
                    round: self.round,
                    delay: self.cfg.delay(self.round),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn policy() -> Policy {
        Policy::new(PolicyConfig::default())
    }

    fn broken() -> RunResult {
        RunResult::Repaired {
            healthy_after: false,
        }
    }

    /// Repairs whenever allowed, at the earliest allowed time, until
    /// quarantined; returns the repair times.
    fn crash_loop(p: &mut Policy, start: Duration, limit: usize) -> Vec<Duration> {
        let mut t = start;
        let mut times = Vec::new();
        for _ in 0..limit {
            match p.decide(t, Observed::Running) {
                Decision::Repair => {
                    times.push(t);
                    if let Transition::Quarantined { .. } = p.record(t, broken()) {
                        break;
                    }
                    t += s(1);
                }
                Decision::Defer { at } => {
                    assert!(at > t, "defer to the past: {at:?} <= {t:?}");
                    t = at;
                }
                Decision::Skip(r) => panic!("unexpected skip {r:?}"),
            }
        }
        times
    }

    #[test]
    fn default_is_design_section_7() {
        let c = PolicyConfig::default();
        assert_eq!((c.max_repairs, c.window), (5, s(60)));
        assert_eq!((c.backoff_initial, c.backoff_max), (s(10), s(300)));
        assert_eq!(c.reset_after, s(600));
        let delays: Vec<u64> = (1..=7).map(|r| c.delay(r).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(c.rounds_to_max(), 6);
        c.validate().unwrap();
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = |f: fn(&mut PolicyConfig)| {
            let mut c = PolicyConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_repairs = 0), PolicyError::NoRepairs);
        assert_eq!(bad(|c| c.window = Duration::ZERO), PolicyError::NoWindow);
        assert_eq!(bad(|c| c.backoff_initial = s(400)), PolicyError::Backoff);
        assert_eq!(bad(|c| c.max_rounds = Some(0)), PolicyError::NoRounds);
    }

    #[test]
    fn a_single_repair_is_immediate_and_not_a_loop() {
        let mut p = policy();
        assert_eq!(p.decide(s(100), Observed::Running), Decision::Repair);
        assert_eq!(
            p.record(
                s(100),
                RunResult::Repaired {
                    healthy_after: true
                }
            ),
            Transition::None
        );
        assert_eq!(p.decide(s(101), Observed::Running), Decision::Repair);
        assert_eq!(p.round(), 0);
    }

    #[test]
    fn healthy_probes_never_count() {
        let mut p = policy();
        for i in 0..1000 {
            assert_eq!(p.decide(s(i), Observed::Running), Decision::Repair);
            assert_eq!(p.record(s(i), RunResult::Healthy), Transition::None);
        }
        assert_eq!(p.repairs_in_window(), 0);
    }

    #[test]
    fn window_fills_then_backoff_doubles_then_quarantine() {
        let mut p = policy();
        let times = crash_loop(&mut p, s(1000), 100);
        // 5 quick repairs fill the window, then rounds 1..=6 (10 s .. 300 s),
        // then the repair after the 300 s round quarantines.
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, [1, 1, 1, 1, 56, 20, 40, 80, 160, 300]);
        assert!(p.is_quarantined());
        assert_eq!(
            p.decide(s(100_000), Observed::Running),
            Decision::Skip(SkipReason::Quarantined)
        );
    }

    #[test]
    fn never_more_than_max_repairs_in_any_window() {
        for max in 1..=6 {
            let cfg = PolicyConfig {
                max_repairs: max,
                window: s(60),
                backoff_initial: s(2),
                backoff_max: s(16),
                ..PolicyConfig::default()
            };
            let mut p = Policy::new(cfg);
            let times = crash_loop(&mut p, s(0), 500);
            for (i, &t) in times.iter().enumerate() {
                let in_window = times[i..].iter().filter(|&&u| u - t < s(60)).count();
                assert!(in_window <= max as usize, "max {max}: {times:?}");
            }
        }
    }

    #[test]
    fn max_rounds_quarantines_early() {
        let mut p = Policy::new(PolicyConfig {
            max_rounds: Some(2),
            ..PolicyConfig::default()
        });
        let times = crash_loop(&mut p, s(0), 100);
        // 5 in the window, then round 1 and round 2 end broken → quarantine.
        assert_eq!(times.len(), 7);
        assert!(p.is_quarantined());
    }

    #[test]
    fn ten_minutes_healthy_forgets_the_loop() {
        let mut p = policy();
        for i in 0..5 {
            assert_eq!(p.decide(s(i), Observed::Running), Decision::Repair);
            p.record(
                s(i),
                RunResult::Repaired {
                    healthy_after: true,
                },
            );
        }
        assert_eq!(p.round(), 1);
        // Healthy probes every 30 s: not yet after 9 min, reset at 10 min.
        let mut reset_at = None;
        for k in 1..=30 {
            let t = s(4 + 30 * k);
            if p.record(t, RunResult::Healthy) == Transition::Reset {
                reset_at = Some(t);
                break;
            }
        }
        assert_eq!(reset_at, Some(s(604)));
        assert_eq!(p.round(), 0);
    }

    #[test]
    fn a_repair_interrupts_the_healthy_stretch() {
        let mut p = policy();
        for i in 0..5 {
            p.decide(s(i), Observed::Running);
            p.record(s(i), broken());
        }
        p.record(s(100), RunResult::Healthy);
        p.record(s(400), RunResult::Inconclusive);
        assert_eq!(p.record(s(500), RunResult::Healthy), Transition::None);
        assert_eq!(p.record(s(1000), RunResult::Healthy), Transition::None);
        assert_eq!(p.record(s(1100), RunResult::Healthy), Transition::Reset);
    }

    #[test]
    fn stop_then_die_is_never_repaired() {
        let mut p = policy();
        p.on_lifecycle(s(10), Lifecycle::StopRequested);
        // Being stopped: still running during the stop timeout.
        assert_eq!(
            p.decide(s(11), Observed::Running),
            Decision::Skip(SkipReason::Stopping)
        );
        p.on_lifecycle(s(12), Lifecycle::Died);
        for t in [13, 100, 10_000] {
            assert_eq!(
                p.decide(s(t), Observed::NotRunning),
                Decision::Skip(SkipReason::StoppedOnPurpose)
            );
        }
        // `docker start` by an operator: watched again.
        p.on_lifecycle(s(20_000), Lifecycle::Started);
        assert_eq!(p.decide(s(20_000), Observed::Running), Decision::Repair);
    }

    #[test]
    fn exited_by_itself_without_restart_policy_is_left_alone() {
        let mut p = policy();
        p.on_lifecycle(s(1), Lifecycle::Died);
        assert_eq!(
            p.decide(s(2), Observed::NotRunning),
            Decision::Skip(SkipReason::NotRunning)
        );
        assert_eq!(
            p.decide(s(2), Observed::Restarting),
            Decision::Skip(SkipReason::RestartPending)
        );
    }

    #[test]
    fn policy_restart_die_then_start_is_repaired() {
        let mut p = policy();
        p.on_lifecycle(s(1), Lifecycle::Died);
        p.on_lifecycle(s(2), Lifecycle::Started);
        assert_eq!(p.decide(s(2), Observed::Running), Decision::Repair);
    }

    #[test]
    fn docker_restart_event_sequence_is_repaired() {
        // kill → die → stop → start → restart (REFERENCE §6.4).
        let mut p = policy();
        p.on_lifecycle(s(1), Lifecycle::StopRequested);
        p.on_lifecycle(s(1), Lifecycle::Died);
        p.on_lifecycle(s(1), Lifecycle::StopRequested);
        p.on_lifecycle(s(2), Lifecycle::Started);
        assert_eq!(p.decide(s(2), Observed::Running), Decision::Repair);
    }

    #[test]
    fn a_signal_that_does_not_stop_expires() {
        let mut p = policy();
        p.on_lifecycle(s(10), Lifecycle::StopRequested); // docker kill -s HUP
        assert_eq!(
            p.decide(s(30), Observed::Running),
            Decision::Skip(SkipReason::Stopping)
        );
        assert_eq!(p.decide(s(70), Observed::Running), Decision::Repair);
    }

    #[test]
    fn running_after_a_missed_start_is_believed() {
        let mut p = policy();
        p.on_lifecycle(s(1), Lifecycle::StopRequested);
        p.on_lifecycle(s(1), Lifecycle::Died);
        // The start event fell into a stream gap; the engine says running.
        assert_eq!(p.decide(s(5), Observed::Running), Decision::Repair);
    }

    #[test]
    fn missing_program_quarantines_after_one_attempt_until_a_start_or_new_settings() {
        let mut p = policy();
        assert_eq!(p.decide(s(0), Observed::Running), Decision::Repair);
        assert_eq!(
            p.record(s(1), RunResult::Deterministic),
            Transition::QuarantinedUntilChange
        );
        // No second attempt, however long it stays like that.
        for t in [2, 60, 600, 6000] {
            assert_eq!(
                p.decide(s(t), Observed::Running),
                Decision::Skip(SkipReason::Quarantined)
            );
        }
        // A container start (e.g. `docker restart`) may bring what was missing.
        p.on_lifecycle(s(6001), Lifecycle::Died);
        p.on_lifecycle(s(6002), Lifecycle::Started);
        assert_eq!(p.decide(s(6003), Observed::Running), Decision::Repair);
        assert_eq!(
            p.record(s(6004), RunResult::Deterministic),
            Transition::QuarantinedUntilChange
        );
        // New settings lift it too; a crash-loop quarantine they do not.
        assert!(p.on_settings_changed());
        assert_eq!(p.decide(s(6005), Observed::Running), Decision::Repair);
        let mut looped = policy();
        crash_loop(&mut looped, s(0), 100);
        assert!(looped.is_quarantined());
        assert!(!looped.on_settings_changed());
        assert!(looped.is_quarantined());
    }

    #[test]
    fn operator_stop_start_lifts_quarantine() {
        let mut p = policy();
        crash_loop(&mut p, s(0), 100);
        assert!(p.is_quarantined());
        // A policy restart (die → start) does not.
        p.on_lifecycle(s(5000), Lifecycle::Died);
        p.on_lifecycle(s(5001), Lifecycle::Started);
        assert!(p.is_quarantined());
        p.on_lifecycle(s(6000), Lifecycle::StopRequested);
        p.on_lifecycle(s(6000), Lifecycle::Died);
        p.on_lifecycle(s(6100), Lifecycle::Started);
        assert!(!p.is_quarantined());
        assert_eq!(p.decide(s(6100), Observed::Running), Decision::Repair);
    }

    #[test]
    fn destroy_forgets_the_stop() {
        let mut p = policy();
        p.on_lifecycle(s(1), Lifecycle::StopRequested);
        p.on_lifecycle(s(1), Lifecycle::Died);
        p.on_lifecycle(s(2), Lifecycle::Destroyed);
        assert_eq!(
            p.decide(s(3), Observed::NotRunning),
            Decision::Skip(SkipReason::NotRunning)
        );
    }

    // Clock skew, after supervisord's *_in_future tests.

    #[test]
    fn last_repair_in_the_future_does_not_stretch_the_delay() {
        let mut p = policy();
        for i in 0..5 {
            p.decide(s(10_000 + i), Observed::Running);
            p.record(s(10_000 + i), broken());
        }
        // The clock jumps back an hour: the policy keeps its own "now".
        match p.decide(s(10_000 - 3600), Observed::Running) {
            Decision::Defer { at } => {
                assert_eq!(at, s(10_060), "deferred wrongly: {at:?}");
            }
            other => panic!("expected a defer, got {other:?}"),
        }
        // And forward again: allowed once the window has passed.
        assert_eq!(p.decide(s(10_060), Observed::Running), Decision::Repair);
    }

    #[test]
    fn a_stale_event_does_not_rewind_state() {
        let mut p = policy();
        p.on_lifecycle(s(100), Lifecycle::Started);
        // A replayed kill from before the start (since= replay): it is
        // clamped to "now" and so counts as a new stop request...
        p.on_lifecycle(s(50), Lifecycle::StopRequested);
        assert_eq!(
            p.decide(s(101), Observed::Running),
            Decision::Skip(SkipReason::Stopping)
        );
        // ...which expires after stop_grace, never later.
        assert_eq!(p.decide(s(160), Observed::Running), Decision::Repair);
    }

    #[test]
    fn backoff_deadline_in_the_future_after_skew_is_bounded() {
        let mut p = Policy::new(PolicyConfig {
            max_repairs: 1,
            ..PolicyConfig::default()
        });
        p.decide(s(100), Observed::Running);
        assert!(matches!(
            p.record(s(100), broken()),
            Transition::BackingOff { round: 1, .. }
        ));
        // A decision stamped before the last repair (skewed caller clock).
        let d = p.decide(s(10), Observed::Running);
        assert_eq!(d, Decision::Defer { at: s(160) });
        assert_eq!(p.decide(s(160), Observed::Running), Decision::Repair);
    }

    #[test]
    fn window_forgets_old_repairs() {
        let mut p = policy();
        for i in 0..4 {
            p.decide(s(i), Observed::Running);
            p.record(s(i), broken());
        }
        assert_eq!(p.repairs_in_window(), 4);
        assert_eq!(p.decide(s(61), Observed::Running), Decision::Repair);
        assert_eq!(p.repairs_in_window(), 2);
        assert_eq!(p.decide(s(64), Observed::Running), Decision::Repair);
        assert_eq!(p.repairs_in_window(), 0);
    }

    #[test]
    fn config_parses_from_toml_in_seconds() {
        let c: PolicyConfig =
            toml::from_str("max-repairs = 3\nwindow = 20\nbackoff-initial = 0.5\n").unwrap();
        assert_eq!(c.max_repairs, 3);
        assert_eq!(c.window, s(20));
        assert_eq!(c.backoff_initial, Duration::from_millis(500));
        assert_eq!(c.backoff_max, s(300));
        assert!(toml::from_str::<PolicyConfig>("windw = 3").is_err());
    }
}
