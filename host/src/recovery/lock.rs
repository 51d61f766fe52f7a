//! Per-sandbox exclusive lock so two `recover` runs on one sandbox
//! serialize. An advisory `flock` on a file in the state dir: the kernel
//! releases it when the process dies, so a crashed runner never leaves a
//! stale lock behind.
//!
//! The lock file is opened through [`crate::safe_fs::open_lock`]: never a
//! symlink (its target would be created or locked), never a FIFO (an open
//! could block), only a regular file of at most [`MAX_LOCK_BYTES`]; and
//! `locks/` itself must be a real directory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::safe_fs::{self, SafeFsError};

/// runner's lock files are empty; something bigger at that path is not one.
pub const MAX_LOCK_BYTES: u64 = 4096;

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
    /// Something that is not runner's lock sits at the path (a symlink, a
    /// FIFO, a directory, a big file): a problem of the state dir, exit 2.
    #[error("cannot lock the sandbox: {0}; remove it (runner recreates it)")]
    Unusable(#[source] SafeFsError),
}

impl SandboxLock {
    /// Wait (bounded) for the lock of `backend`/`sandbox`.
    pub async fn acquire(backend: &str, sandbox: &str, wait: Duration) -> Result<Self, LockError> {
        Self::acquire_in(
            &crate::paths::state_dir().join("locks"),
            backend,
            sandbox,
            wait,
        )
        .await
    }

    /// [`SandboxLock::acquire`] with the lock directory given.
    pub async fn acquire_in(
        dir: &Path,
        backend: &str,
        sandbox: &str,
        wait: Duration,
    ) -> Result<Self, LockError> {
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
        let unusable = |e: SafeFsError| match e {
            SafeFsError::Io { source, .. } => io(source),
            other => LockError::Unusable(other),
        };
        safe_fs::ensure_dir(dir, 0o700).map_err(unusable)?;
        let file = safe_fs::open_lock(&path, 0o600, MAX_LOCK_BYTES).map_err(unusable)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_paths_that_are_not_runner_locks_are_refused_not_followed() {
        let dir = std::env::temp_dir().join(format!("runner-lock-odd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let locks = dir.join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        let target = dir.join("elsewhere");
        let path = locks.join("local-sb.lock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let acquire = || SandboxLock::acquire_in(&locks, "local", "sb", Duration::from_secs(5));
        let err = rt.block_on(acquire()).unwrap_err();
        assert!(matches!(err, LockError::Unusable(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("is a symbolic link, not a regular file"),
            "{err}"
        );
        assert!(!target.exists(), "the link was followed");
        std::fs::remove_file(&path).unwrap();
        for (what, make) in [
            (
                "a FIFO",
                &(|p: &Path| {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        p,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o600),
                        0,
                    )
                    .unwrap()
                }) as &dyn Fn(&Path),
            ),
            ("a directory", &|p: &Path| std::fs::create_dir(p).unwrap()),
            ("a huge file", &|p: &Path| {
                std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap()
            }),
        ] {
            make(&path);
            let started = std::time::Instant::now();
            let err = rt.block_on(acquire()).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(matches!(err, LockError::Unusable(_)), "{what}: {err:?}");
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir(&path));
        }
        let lock = rt.block_on(acquire()).unwrap();
        assert!(std::fs::symlink_metadata(&lock.path).unwrap().is_file());
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
