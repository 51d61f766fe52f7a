//! Per-sandbox exclusive lock so two `recover` runs on one sandbox
//! serialize. An advisory `flock` on a file in the state dir: the kernel
//! releases it when the process dies, so a crashed runner never leaves a
//! stale lock behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SandboxLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create lock file {path}: {cause}")]
    Io { path: PathBuf, cause: String },
    #[error("another runner holds {path}; gave up after {waited_ms} ms")]
    Busy { path: PathBuf, waited_ms: u64 },
}

impl SandboxLock {
    /// Wait (bounded) for the lock of `backend`/`sandbox`.
    pub async fn acquire(backend: &str, sandbox: &str, wait: Duration) -> Result<Self, LockError> {
        let dir = crate::paths::state_dir().join("locks");
        let safe: String = sandbox
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{backend}-{safe}.lock"));
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            cause: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let started = Instant::now();
        let mut delay = Duration::from_millis(10);
        loop {
            // SAFETY: flock on a valid, owned file descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Self { _file: file, path });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(err));
            }
            if started.elapsed() >= wait {
                return Err(LockError::Busy {
                    path,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            tokio::time::sleep(delay.min(wait.saturating_sub(started.elapsed()))).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }
}
