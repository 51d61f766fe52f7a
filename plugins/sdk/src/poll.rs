//! Pauses for a bounded poll: short at first, so a condition that clears in
//! a few hundred milliseconds is seen at once, growing so a slow one does not
//! cost a request every few milliseconds, and never more than a fixed total.
//!
//! Every wait-and-look-again loop in the plugins goes through [`Backoff`]:
//! its pauses are an iterator, so the schedule is unit-tested without
//! sleeping.

use std::time::{Duration, Instant};

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

    /// The same pause every time, with no budget of its own (bound it with
    /// [`Backoff::pause_until`]).
    pub fn fixed(every: Duration) -> Self {
        Self::new(every, every, Duration::MAX)
    }

    /// Make the next pause at most `at_most` (growth resumes from there), to
    /// look again soon when something is about to be decided.
    pub fn shorten_next(&mut self, at_most: Duration) {
        self.next = self.next.min(at_most);
    }

    /// The next pause cut to end by `remaining`; `None` once nothing
    /// remains or the budget is spent.
    pub fn next_within(&mut self, remaining: Duration) -> Option<Duration> {
        if remaining.is_zero() {
            return None;
        }
        self.next().map(|p| p.min(remaining))
    }

    /// Sleeps for the next pause, ending by `deadline` at the latest;
    /// `false` (without sleeping) once the deadline has passed.
    pub fn pause_until(&mut self, deadline: Instant) -> bool {
        match self.next_within(deadline.saturating_duration_since(Instant::now())) {
            Some(p) => {
                std::thread::sleep(p);
                true
            }
            None => false,
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
    fn a_launch_poll_grows_from_10_ms_to_its_100_ms_cap() {
        let pauses: Vec<u64> = Backoff::new(ms(10), ms(100), Duration::MAX)
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![10, 15, 22, 33, 50, 75, 100, 100]);
    }

    #[test]
    fn a_shortened_pause_grows_again_from_the_shorter_value() {
        let mut b = Backoff::new(ms(10), ms(100), Duration::MAX);
        let _ = b.by_ref().take(7).count();
        b.shorten_next(ms(20));
        let next: Vec<u64> = b.take(3).map(|d| d.as_millis() as u64).collect();
        assert_eq!(next, vec![20, 30, 45]);
    }

    #[test]
    fn a_fixed_poll_is_cut_to_end_at_the_deadline_and_stops_after_it() {
        let mut b = Backoff::fixed(ms(200));
        assert_eq!(b.next_within(ms(1000)), Some(ms(200)));
        assert_eq!(b.next_within(ms(50)), Some(ms(50)));
        assert_eq!(b.next_within(Duration::ZERO), None);
        // The deadline, not the schedule, ends a fixed poll.
        assert_eq!(b.next_within(ms(300)), Some(ms(200)));
    }

    #[test]
    fn a_budget_ends_the_poll_before_a_later_deadline() {
        let mut b = Backoff::new(ms(100), ms(100), ms(150));
        assert_eq!(b.next_within(ms(1000)), Some(ms(100)));
        assert_eq!(b.next_within(ms(1000)), Some(ms(50)));
        assert_eq!(b.next_within(ms(1000)), None);
    }

    #[test]
    fn a_passed_deadline_never_sleeps() {
        let mut b = Backoff::fixed(ms(200));
        assert!(!b.pause_until(Instant::now()));
    }

    #[test]
    fn a_zero_budget_never_pauses() {
        let mut b = Backoff::new(ms(100), ms(500), Duration::ZERO);
        assert!(!b.pause());
        assert_eq!(b.next(), None);
    }
}
