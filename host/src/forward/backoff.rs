//! Restart policy of supervised forwards (kubefwd's rule, REFERENCE §7.2):
//! the first restart is immediate, then 1 s doubling to a cap of 5 min, and
//! the count resets only once a forward has actually carried traffic. A
//! forward that starts and dies without ever serving a byte keeps backing
//! off, so a sandbox whose port never answers cannot make us spin.
//!
//! Pure: every method takes the current time, so tests inject it.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the second restart; each later one doubles it.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// Delay before restart number `n` (0-based) since the last reset.
    pub fn delay(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        // 2^(n-1), saturating long before u32 overflows the shift.
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

#[derive(Debug, Clone)]
pub struct RestartBackoff {
    policy: RestartPolicy,
    /// Failures since the last reset.
    failures: u32,
    not_before: Option<Instant>,
}

impl RestartBackoff {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            not_before: None,
        }
    }

    /// The forward died or failed to start at `now`; returns the earliest
    /// time of the next start.
    pub fn on_failure(&mut self, now: Instant) -> Instant {
        let at = now + self.policy.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(at);
        at
    }

    /// The forward carried traffic (bytes, not just a connect probe): it
    /// was established, so its next failure starts the sequence afresh.
    pub fn on_traffic(&mut self) {
        self.failures = 0;
    }

    pub fn may_start(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// Time left before a start is allowed.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.not_before
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn first_retry_is_immediate_then_doubles_from_one_second_to_the_cap() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::new(RestartPolicy::default());
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let at = b.on_failure(now);
            delays.push(at - now);
            assert!(!b.may_start(at - Duration::from_millis(1)) || at == now);
            assert!(b.may_start(at));
            now = at;
        }
        assert_eq!(
            delays,
            [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
                .map(S)
                .to_vec()
        );
    }

    #[test]
    fn the_count_resets_only_after_traffic() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::new(RestartPolicy::default());
        b.on_failure(t0);
        b.on_failure(t0);
        let at = b.on_failure(t0);
        assert_eq!(at - t0, S(2));
        // A restart that dies before serving a byte keeps backing off.
        assert_eq!(b.on_failure(t0 + S(2)) - (t0 + S(2)), S(4));
        // Traffic proves the forward was established: start over.
        b.on_traffic();
        assert_eq!(b.failures(), 0);
        let t1 = t0 + S(100);
        assert_eq!(b.on_failure(t1), t1);
        assert_eq!(b.on_failure(t1) - t1, S(1));
    }

    #[test]
    fn waiting_is_reported_without_sleeping() {
        let t0 = Instant::now();
        let mut b = RestartBackoff::new(RestartPolicy::default());
        assert!(b.may_start(t0));
        assert_eq!(b.remaining(t0), Duration::ZERO);
        b.on_failure(t0);
        let at = b.on_failure(t0);
        assert!(!b.may_start(t0 + Duration::from_millis(400)));
        assert_eq!(
            b.remaining(t0 + Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        assert!(b.may_start(at));
        assert_eq!(b.remaining(at + S(5)), Duration::ZERO);
    }

    #[test]
    fn huge_failure_counts_saturate_at_the_cap() {
        let p = RestartPolicy::default();
        assert_eq!(p.delay(40), S(300));
        assert_eq!(p.delay(u32::MAX), S(300));
        let custom = RestartPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: S(1),
        };
        assert_eq!(
            (0..6)
                .map(|n| custom.delay(n).as_millis())
                .collect::<Vec<_>>(),
            [0, 100, 200, 400, 800, 1000]
        );
    }
}
