//! What the bench binaries share: size knobs from the environment, the wall
//! clock the engine's timestamps are compared with, and the one percentile
//! rule every table in docs/benchmarks.md uses (nearest rank on the sorted
//! samples: index round((n - 1) * q)), and the load average every table
//! records.
//!
//! Include with `#[path = "support/stats.rs"] mod stats;`.
#![allow(dead_code)]

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// `key` parsed from the environment, or `default` when unset or malformed.
pub fn env_or<T: FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The `q` quantile of samples already sorted ascending (must be non-empty).
pub fn at<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `samples` sorted ascending (floats from measurements: never NaN).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).expect("a measured time is never NaN"));
    s
}

/// The 1, 5 and 15 minute load averages, for the record.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
