//! When a watched sandbox is looked at next, as a pure state machine (like
//! [`super::policy`]: every input carries its time, `Duration` since an
//! arbitrary origin, and the jitter draw is passed in).
//!
//! Two kinds of periodic work per sandbox:
//!
//! - a **liveness check** every `liveness` interval: only procfs reads of the
//!   identities the last healthy full pass depended on (the container's init,
//!   the gateway's pid and start time, its listening socket, the host
//!   forward); microseconds, no engine call, no plugin call;
//! - a **full pass** (the plugin's whole probe, through the recovery engine)
//!   every `full` interval, jittered to 0.5–1.5 × `full`; the first one after
//!   a sandbox is first armed comes after 0–1 × `full`, so sandboxes
//!   discovered together spread over the interval at once instead of
//!   probing in one herd.
//!
//! A full pass also runs at once on any container event, when a liveness
//! check fails, and, while no liveness identity is armed (the last full pass
//! was not healthy, its evidence named no gateway, or procfs is not
//! reachable), every `liveness` interval instead, like a plain interval probe.
//!
//! Docker reports `docker restart` as `… die, start, restart`: the `start`
//! triggers the urgent pass, and a `restart` within [`RESTART_COALESCE`] of a
//! `start` adds nothing, so it is dropped rather than queued behind it.

use std::time::Duration;

/// A `restart` event this soon after a `start` is the same restart.
pub const RESTART_COALESCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Between liveness checks (and between full passes while unarmed).
    pub liveness: Duration,
    /// Mean time between full passes of an armed sandbox.
    pub full: Duration,
}

/// Which work is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Liveness,
    Full,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    cfg: ScheduleConfig,
    armed: bool,
    next_liveness: Duration,
    next_full: Duration,
    last_start: Option<Duration>,
    /// Was it ever armed (the first armed interval is spread differently)?
    ever_armed: bool,
}

/// `full` scaled to 0.5–1.5 × by a draw `u` in [0, 1).
pub fn jittered(full: Duration, u: f64) -> Duration {
    full.mul_f64(0.5 + u.clamp(0.0, 1.0))
}

impl Schedule {
    /// A newly watched sandbox: a full pass is due at once.
    pub fn new(cfg: ScheduleConfig, now: Duration) -> Self {
        Self {
            cfg,
            armed: false,
            next_liveness: now + cfg.liveness,
            next_full: now,
            last_start: None,
            ever_armed: false,
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// The next due work and when.
    pub fn next(&self) -> (Duration, Due) {
        if self.armed && self.next_liveness < self.next_full {
            (self.next_liveness, Due::Liveness)
        } else {
            (self.next_full, Due::Full)
        }
    }

    /// A full pass ended at `now`; `armed`: it was healthy and left an
    /// identity to check cheaply. `u` is a jitter draw in [0, 1).
    pub fn full_done(&mut self, now: Duration, armed: bool, u: f64) {
        self.armed = armed;
        let first = armed && !self.ever_armed;
        self.ever_armed |= armed;
        self.next_liveness = now + self.cfg.liveness;
        self.next_full = if first {
            now + self
                .cfg
                .full
                .mul_f64(u.clamp(0.0, 1.0))
                .max(self.cfg.liveness)
        } else if armed {
            now + jittered(self.cfg.full, u)
        } else {
            now + self.cfg.liveness
        };
    }

    /// A full pass must wait until `at` (crash-loop backoff, or a retry
    /// after a failed repair); nothing is checked cheaply meanwhile.
    pub fn full_at(&mut self, at: Duration) {
        self.armed = false;
        self.next_full = at;
    }

    /// A liveness check ran at `now`: a failure makes a full pass due now.
    pub fn liveness_done(&mut self, now: Duration, ok: bool) {
        if ok {
            self.next_liveness = now + self.cfg.liveness;
        } else {
            self.armed = false;
            self.next_full = now;
        }
    }

    /// Any container event (or a probe request): the identity may be stale,
    /// a full pass is due now.
    pub fn trigger(&mut self, now: Duration) {
        self.armed = false;
        self.next_full = self.next_full.min(now);
    }

    /// A `start` event.
    pub fn started(&mut self, now: Duration) {
        self.last_start = Some(now);
        self.trigger(now);
    }

    /// Does a `restart` event at `now` need its own pass? Not when a `start`
    /// (which already triggered one) came shortly before.
    pub fn wants_restart_probe(&self, now: Duration) -> bool {
        self.last_start
            .is_none_or(|s| now.saturating_sub(s) >= RESTART_COALESCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn cfg() -> ScheduleConfig {
        ScheduleConfig {
            liveness: S(10),
            full: S(600),
        }
    }

    #[test]
    fn new_sandbox_gets_a_full_pass_at_once() {
        let s = Schedule::new(cfg(), S(5));
        assert_eq!(s.next(), (S(5), Due::Full));
        assert!(!s.is_armed());
    }

    #[test]
    fn first_armed_interval_spreads_over_zero_to_one_interval() {
        let mut a = Schedule::new(cfg(), S(0));
        a.full_done(S(0), true, 0.25);
        assert_eq!(a.next_full, S(150));
        // Never sooner than one liveness interval.
        let mut b = Schedule::new(cfg(), S(0));
        b.full_done(S(0), true, 0.0);
        assert_eq!(b.next_full, S(10));
        // Unarmed passes do not use up the first spread.
        let mut c = Schedule::new(cfg(), S(0));
        c.full_done(S(0), false, 0.9);
        c.full_done(S(10), true, 0.5);
        assert_eq!(c.next_full, S(310));
        // Later ones: 0.5–1.5 ×.
        c.full_done(S(310), true, 0.5);
        assert_eq!(c.next_full, S(910));
    }

    #[test]
    fn armed_sandbox_gets_liveness_checks_until_the_jittered_full_pass() {
        let mut s = Schedule::new(cfg(), S(0));
        s.full_done(S(0), true, 0.0);
        s.full_done(S(1), true, 0.5);
        // Full pass after exactly 1.0 × full with u = 0.5.
        let full_at = S(601);
        let mut now = S(1);
        let mut checks = 0;
        for _ in 0..100 {
            let (at, due) = s.next();
            assert!(at >= now);
            now = at;
            if due == Due::Full {
                break;
            }
            checks += 1;
            s.liveness_done(now, true);
        }
        assert_eq!(now, full_at);
        assert_eq!(checks, 59); // 11, 21, …, 591
        assert_eq!(s.next(), (full_at, Due::Full));
    }

    #[test]
    fn jitter_spreads_full_passes_over_half_to_one_and_a_half_intervals() {
        assert_eq!(jittered(S(600), 0.0), S(300));
        assert_eq!(jittered(S(600), 0.999_999), S(600).mul_f64(1.499_999));
        assert_eq!(jittered(S(600), 7.0), S(900));
        let mut a = Schedule::new(cfg(), S(0));
        let mut b = Schedule::new(cfg(), S(0));
        a.full_done(S(0), true, 0.0);
        b.full_done(S(0), true, 0.0);
        a.full_done(S(0), true, 0.1);
        b.full_done(S(0), true, 0.9);
        let (fa, fb) = (a.next_full, b.next_full);
        assert!(fb > fa + S(400), "{fa:?} vs {fb:?}");
    }

    #[test]
    fn failed_liveness_check_makes_a_full_pass_due_now() {
        let mut s = Schedule::new(cfg(), S(0));
        s.full_done(S(0), true, 0.5);
        assert_eq!(s.next(), (S(10), Due::Liveness));
        s.liveness_done(S(10), false);
        assert_eq!(s.next(), (S(10), Due::Full));
        assert!(!s.is_armed());
    }

    #[test]
    fn unarmed_sandbox_gets_a_full_pass_every_liveness_interval() {
        let mut s = Schedule::new(cfg(), S(0));
        s.full_done(S(2), false, 0.5);
        assert_eq!(s.next(), (S(12), Due::Full));
        s.full_done(S(12), false, 0.5);
        assert_eq!(s.next(), (S(22), Due::Full));
    }

    #[test]
    fn events_preempt_the_schedule_and_disarm() {
        let mut s = Schedule::new(cfg(), S(0));
        s.full_done(S(0), true, 0.5);
        s.trigger(S(3));
        assert_eq!(s.next(), (S(3), Due::Full));
        assert!(!s.is_armed());
        // An earlier due time is never postponed by a later trigger.
        s.trigger(S(4));
        assert_eq!(s.next(), (S(3), Due::Full));
    }

    #[test]
    fn deferred_full_pass_is_not_preempted_by_liveness_checks() {
        let mut s = Schedule::new(cfg(), S(0));
        s.full_done(S(0), true, 0.5);
        s.full_at(S(40));
        assert_eq!(s.next(), (S(40), Due::Full));
    }

    #[test]
    fn restart_right_after_start_is_coalesced() {
        let mut s = Schedule::new(cfg(), S(0));
        assert!(s.wants_restart_probe(S(1)));
        s.started(S(100));
        assert!(!s.wants_restart_probe(S(100)));
        assert!(!s.wants_restart_probe(S(109)));
        assert!(s.wants_restart_probe(S(110)));
        assert_eq!(s.next(), (S(0), Due::Full));
    }
}
