//! A cross-process counting semaphore. nextest runs every test in its own process, so a
//! limit like "at most two OpenClaw containers (≈1 GB RAM each) at once" has to live
//! outside the process: `max` lock files, each held with flock by at most one holder.
//! The kernel drops a flock when its holder dies, so a crashed test cannot leak a slot.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RETRY_EVERY: Duration = Duration::from_millis(200);

/// A held slot; dropping it releases the slot.
#[derive(Debug)]
pub struct Slot {
    _file: File,
    path: PathBuf,
    index: usize,
}

impl Slot {
    /// Which of the `max` slots this is (0-based): a holder can derive
    /// per-slot names (sockets, bridges) no other holder uses.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

fn slot_path(kind: &str, n: usize) -> PathBuf {
    PathBuf::from(format!("/tmp/runner-e2e-slot-{kind}-{n}"))
}

/// Takes one of `max` slots of `kind`, waiting up to `limit` for one to free up.
pub async fn acquire(kind: &str, max: usize, limit: Duration) -> Result<Slot> {
    if max == 0 {
        bail!("slot kind {kind:?} has max 0: nothing could ever run");
    }
    if !kind
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("slot kind {kind:?} must be [A-Za-z0-9_-]");
    }
    let started = Instant::now();
    loop {
        for n in 0..max {
            let path = slot_path(kind, n);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("open slot file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Slot {
                        _file: file,
                        path,
                        index: n,
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("flock {}", path.display()));
                }
            }
        }
        if started.elapsed() >= limit {
            bail!(
                "all {max} {kind:?} slots stayed busy for {:.0}s (files /tmp/runner-e2e-slot-{kind}-*); \
                 another test process holds them",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_kind() -> String {
        format!(
            "unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], "")
    }

    #[tokio::test]
    async fn at_most_max_holders_and_release_on_drop() {
        let kind = unique_kind();
        let a = acquire(&kind, 2, Duration::ZERO).await.unwrap();
        let b = acquire(&kind, 2, Duration::ZERO).await.unwrap();
        assert_ne!(a.path(), b.path());
        let err = acquire(&kind, 2, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("slots stayed busy"));
        drop(a);
        let c = acquire(&kind, 2, Duration::from_secs(2)).await.unwrap();
        for n in 0..2 {
            let _ = std::fs::remove_file(slot_path(&kind, n));
        }
        drop((b, c));
    }

    #[tokio::test]
    async fn rejects_nonsense_kinds() {
        assert!(acquire("../x", 1, Duration::ZERO).await.is_err());
        assert!(acquire("ok", 0, Duration::ZERO).await.is_err());
    }
}
