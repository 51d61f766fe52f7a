//! Reads: whole files under a cap, a private key, a log's tail; each on a
//! helper thread under a deadline.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use super::{OPEN_FLAGS, READ_DEADLINE, SafeFsError, open_error, refuse_odd, regular};

/// Whether a read may go through a symlink at the final component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Links {
    /// Runner's own files: a symlink there was not put there by runner.
    Refuse,
    /// A path the user named (`--plugin`, `--config`): the user chose it,
    /// and may well point it at a link (a packaged plugin, a Nix store
    /// path). What it leads to must still be a regular file.
    Follow,
}

/// The whole of one of runner's own files: a regular file (not a symlink)
/// of at most `cap` bytes, read within [`READ_DEADLINE`].
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, SafeFsError> {
    read_regular_within(path, cap, READ_DEADLINE)
}

/// [`read_regular`] with its own deadline.
pub fn read_regular_within(
    path: &Path,
    cap: u64,
    deadline: Duration,
) -> Result<Vec<u8>, SafeFsError> {
    read_whole(path, cap, deadline, Links::Refuse)
}

/// The whole of a file the user named on the command line: symlinks are
/// followed, but what they lead to must be a regular file of at most `cap`
/// bytes, read within [`READ_DEADLINE`].
pub fn read_user_file(path: &Path, cap: u64) -> Result<Vec<u8>, SafeFsError> {
    read_whole(path, cap, READ_DEADLINE, Links::Follow)
}

fn read_whole(
    path: &Path,
    cap: u64,
    deadline: Duration,
    links: Links,
) -> Result<Vec<u8>, SafeFsError> {
    let owned = path.to_path_buf();
    within(path, deadline, move || {
        let (file, meta) = open_read(&owned, links)?;
        read_capped(&owned, file, &meta, cap)
    })
}

/// A secret of exactly `len` bytes: a regular file owned by this user, not
/// accessible to group or others.
pub fn read_private(path: &Path, len: u64) -> Result<Vec<u8>, SafeFsError> {
    let owned = path.to_path_buf();
    within(path, READ_DEADLINE, move || {
        let (file, meta) = open_read(&owned, Links::Refuse)?;
        let user = rustix::process::geteuid().as_raw();
        if meta.uid() != user {
            return Err(SafeFsError::NotOwned {
                path: owned,
                owner: meta.uid(),
                user,
            });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(SafeFsError::NotPrivate {
                path: owned,
                mode: meta.mode() & 0o7777,
            });
        }
        if meta.len() != len {
            return Err(SafeFsError::WrongSize {
                path: owned,
                size: meta.len(),
                expected: len,
            });
        }
        let data = read_capped(&owned, file, &meta, len)?;
        if data.len() as u64 != len {
            return Err(SafeFsError::WrongSize {
                path: owned,
                size: data.len() as u64,
                expected: len,
            });
        }
        Ok(data)
    })
}

/// The last `max` bytes of a regular file (a log's tail for a message).
pub fn read_tail(path: &Path, max: u64) -> Result<Vec<u8>, SafeFsError> {
    let owned = path.to_path_buf();
    within(path, READ_DEADLINE, move || {
        let (mut file, meta) = open_read(&owned, Links::Refuse)?;
        file.seek(SeekFrom::Start(meta.len().saturating_sub(max)))
            .map_err(|e| SafeFsError::io(&owned, "read", e))?;
        let mut data = Vec::new();
        file.take(max)
            .read_to_end(&mut data)
            .map_err(|e| SafeFsError::io(&owned, "read", e))?;
        Ok(data)
    })
}

/// Open for reading and check what was opened. A `lstat` first keeps
/// runner from even opening a device; the `fstat` after is what counts.
fn open_read(path: &Path, links: Links) -> Result<(File, Metadata), SafeFsError> {
    let flags = match links {
        Links::Refuse => {
            refuse_odd(path, std::fs::symlink_metadata(path))?;
            OPEN_FLAGS
        }
        Links::Follow => {
            refuse_odd(path, std::fs::metadata(path))?;
            OPEN_FLAGS & !libc::O_NOFOLLOW
        }
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let meta = regular(path, &file)?;
    Ok((file, meta))
}

fn read_capped(path: &Path, file: File, meta: &Metadata, cap: u64) -> Result<Vec<u8>, SafeFsError> {
    if meta.len() > cap {
        return Err(SafeFsError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            cap,
        });
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| SafeFsError::io(path, "read", e))?;
    if data.len() as u64 > cap {
        // It grew while being read.
        return Err(SafeFsError::TooLarge {
            path: path.to_path_buf(),
            size: data.len() as u64,
            cap,
        });
    }
    Ok(data)
}

/// Runs `f` on a helper thread and waits at most `deadline` for it. A
/// thread stuck in the kernel (a hung NFS mount) is left behind; it holds
/// nothing but its own descriptor.
pub(super) fn within<T: Send + 'static>(
    path: &Path,
    deadline: Duration,
    f: impl FnOnce() -> Result<T, SafeFsError> + Send + 'static,
) -> Result<T, SafeFsError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("runner-fs-read".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| SafeFsError::io(path, "read", e))?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(SafeFsError::Timeout {
            path: path.to_path_buf(),
            deadline,
        }),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(SafeFsError::io(
            path,
            "read",
            std::io::Error::other("the reading thread died"),
        )),
    }
}
