//! Polling delays for verification: start fast (most repairs are proven in
//! well under a second), grow geometrically, never exceed a cap, and never
//! sleep past the deadline.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    factor: f64,
    cap: Duration,
}

impl Backoff {
    pub fn new(first: Duration, factor: f64, cap: Duration) -> Self {
        Self {
            next: first,
            factor,
            cap,
        }
    }

    /// The verification default: 10 ms, ×1.5, capped at 500 ms. A probe
    /// itself takes tens of ms, so the first re-checks come right after each
    /// other (a fixture gateway listens ~20 ms after its start), and a slow
    /// agent (OpenClaw, ready ~15–20 s after its start) is seen ready at most
    /// half a second late while being probed only twice a second.
    pub fn verify() -> Self {
        Self::new(Duration::from_millis(10), 1.5, Duration::from_millis(500))
    }

    /// Next delay, clipped to `remaining`; `None` when no time is left.
    pub fn next_delay(&mut self, remaining: Duration) -> Option<Duration> {
        if remaining.is_zero() {
            return None;
        }
        let delay = self.next.min(remaining);
        self.next = self.next.mul_f64(self.factor).min(self.cap);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_respect_the_deadline() {
        let mut b = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_millis(500));
        let big = Duration::from_secs(60);
        let seq: Vec<u128> = (0..5)
            .map(|_| b.next_delay(big).unwrap().as_millis())
            .collect();
        assert_eq!(seq, vec![100, 200, 400, 500, 500]);
        assert_eq!(
            b.next_delay(Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert_eq!(b.next_delay(Duration::ZERO), None);
    }
}
