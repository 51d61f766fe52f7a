//! Pauses for a bounded poll: short at first, so a condition that clears in
//! a few hundred milliseconds is seen at once, growing so a slow one does not
//! cost a request every few milliseconds, and never more than a fixed total.

use std::time::Duration;

/// The pauses between attempts: `first`, then ×1.5 each time up to `max`,
/// until they add up to `budget` (the last one is cut to fit).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    left: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration, budget: Duration) -> Self {
        Self {
            next: first,
            max,
            left: budget,
        }
    }

    /// Sleeps for the next pause; `false` (without sleeping) once the budget
    /// is spent.
    pub fn pause(&mut self) -> bool {
        match self.next() {
            Some(p) => {
                std::thread::sleep(p);
                true
            }
            None => false,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.left.is_zero() {
            return None;
        }
        let pause = self.next.min(self.left);
        self.left -= pause;
        self.next = (self.next * 3 / 2).min(self.max);
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn pauses_grow_to_the_cap_and_stop_at_the_budget() {
        let pauses: Vec<u128> = Backoff::new(ms(100), ms(500), ms(2000))
            .map(|d| d.as_micros())
            .collect();
        assert_eq!(
            pauses,
            vec![
                100_000, 150_000, 225_000, 337_500, 500_000, 500_000, 187_500
            ]
        );
        assert_eq!(pauses.iter().sum::<u128>(), 2_000_000);
    }

    #[test]
    fn a_condition_that_clears_in_300_ms_is_seen_within_one_pause_of_it() {
        // The first attempts land at 100, 250, 475 ms: the one after 300 ms
        // is 175 ms late, where a fixed 1 s pause would be 700 ms late.
        let mut at = Duration::ZERO;
        let first_after = Backoff::new(ms(100), ms(500), ms(6000))
            .map(|p| {
                at += p;
                at
            })
            .find(|t| *t >= ms(300))
            .unwrap();
        assert_eq!(first_after, ms(475));
    }

    #[test]
    fn a_zero_budget_never_pauses() {
        let mut b = Backoff::new(ms(100), ms(500), Duration::ZERO);
        assert!(!b.pause());
        assert_eq!(b.next(), None);
    }
}
