//! The policy's tunables, as the watch config file sets them.

use std::time::Duration;

/// Tunables. The defaults: at most 5 repairs in 60 s, then backoff rounds
/// from 10 s doubling to 5 min, forgotten after 10 min healthy.
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
