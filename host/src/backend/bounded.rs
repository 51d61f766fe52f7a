//! Small helpers that keep backend calls bounded in size and time.

use std::time::Duration;

use super::BackendError;

/// Deadline for calls that take none (file and /proc operations).
pub(crate) const INTERNAL_DEADLINE: Duration = Duration::from_secs(10);

/// A byte buffer that keeps at most `max` bytes and remembers whether it
/// had to drop any. Producers keep being drained past the cap so a chatty
/// process never blocks on a full pipe.
#[derive(Debug)]
pub(crate) struct CappedBuf {
    data: Vec<u8>,
    max: usize,
    truncated: bool,
}

impl CappedBuf {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            data: Vec::new(),
            max,
            truncated: false,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let room = self.max.saturating_sub(self.data.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.data
    }
}

/// Runs a blocking closure on the blocking pool, giving up after `limit`.
/// The closure itself cannot be cancelled; /proc and file operations are
/// short, so a stuck one (a hung FUSE mount) only costs a pool thread.
pub(crate) async fn run_blocking<T, F>(what: &str, limit: Duration, f: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BackendError> + Send + 'static,
{
    match tokio::time::timeout(limit, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(BackendError::Failed(format!(
            "{what}: worker failed: {join}"
        ))),
        Err(_) => Err(BackendError::Timeout(format!(
            "{what} took longer than {limit:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_buf_cuts_and_flags() {
        let mut b = CappedBuf::new(5);
        b.push(b"abc");
        assert!(!b.truncated());
        b.push(b"defg");
        assert!(b.truncated());
        b.push(b"more");
        assert_eq!(b.into_inner(), b"abcde");
        let mut exact = CappedBuf::new(3);
        exact.push(b"abc");
        assert!(!exact.truncated());
    }
}
