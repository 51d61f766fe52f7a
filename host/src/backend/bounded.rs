//! Small helpers that keep backend calls bounded in size and time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

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

pub(crate) type SharedBuf = Arc<Mutex<CappedBuf>>;

/// Reads a pipe to EOF into `buf` (which keeps at most its cap).
pub(crate) async fn drain<R: AsyncRead + Unpin>(pipe: Option<R>, buf: SharedBuf) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&chunk[..n]),
        }
    }
}

/// Waits for a drain task until `until`; a pipe still held open by a
/// background child is then abandoned, keeping what was read so far.
pub(crate) async fn collect(
    task: tokio::task::JoinHandle<()>,
    buf: SharedBuf,
    until: Instant,
) -> CappedBuf {
    let abort = task.abort_handle();
    if tokio::time::timeout_at(until, task).await.is_err() {
        abort.abort();
        tracing::debug!("output pipe still open after exit (a background child holds it)");
    }
    let mut guard = buf.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::replace(&mut *guard, CappedBuf::new(0))
}

/// A failed process start as a backend error: a missing or unusable
/// program is deterministic (no retry helps), anything else is not.
/// `whose` names whose PATH was searched, e.g. "the sandbox's".
pub(crate) fn spawn_error(program: &str, whose: &str, e: &std::io::Error) -> BackendError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            BackendError::NoSuchBinary(format!("'{program}' was not found in {whose} PATH"))
        }
        std::io::ErrorKind::PermissionDenied => {
            BackendError::NoSuchBinary(format!("'{program}' is not executable"))
        }
        _ => BackendError::Failed(format!("cannot start '{program}': {e}")),
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
