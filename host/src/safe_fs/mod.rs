//! The one module through which runner reads and writes the files it keeps
//! or is given on the host: plugin `.wasm` files, the watch config, compile
//! cache entries and their key, and its state (audit log, locks, forward
//! records and logs).
//!
//! Every such path is untrusted in the same ways, and checked the same way:
//!
//! * **Only regular files.** A FIFO, socket, device or directory at the path
//!   is refused with an error naming what it is. Reads open with
//!   `O_NONBLOCK`, so a FIFO never blocks the open, and `fstat` the opened
//!   descriptor, so the check and the read are about the same inode.
//! * **No symlinks followed.** Every open uses `O_NOFOLLOW`; a write replaces
//!   a file by `rename` of a temp file created with `O_EXCL | O_NOFOLLOW`, so
//!   a symlink planted at the path is replaced, never written through.
//! * **Size caps.** Each read names its cap; a file over it is refused from
//!   its `fstat` size before a byte is read (a sparse 5 GiB file costs
//!   nothing), and a file growing while read is cut at cap + 1 and refused.
//! * **A deadline.** A read runs on a helper thread and is given up after
//!   [`READ_DEADLINE`] (a stalled network file system); the caller gets
//!   [`SafeFsError::Timeout`], never a hang.
//!
//! Only the last component of a path is guarded: the directories above it
//! (`$RUNNER_STATE_DIR`, `$HOME/.cache`) are the user's choice and may be
//! symlinks. The directories runner creates itself inside them (`locks/`,
//! `forwards/`, `components/`) go through [`ensure_dir`], which refuses a
//! symlink there too.

mod error;
mod read;
mod write;

use std::fs::{File, Metadata};
use std::path::Path;
use std::time::Duration;

pub use error::{FileKind, SafeFsError, human_size};
pub use read::{read_private, read_regular, read_regular_within, read_tail, read_user_file};
pub use write::{create_new, ensure_dir, open_append, open_lock, write_atomic};

/// How long one read of a host file may take before it is given up.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Flags of every open: never follow a final symlink, never block on a
/// FIFO, never leak the descriptor into a child, never adopt a terminal.
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// Refuses a path that already is something other than a regular file.
/// Missing is fine (the open reports it, or creates the file).
fn refuse_odd(path: &Path, meta: std::io::Result<Metadata>) -> Result<(), SafeFsError> {
    match meta {
        Ok(meta) => match FileKind::of(meta.file_type()) {
            FileKind::Regular => Ok(()),
            kind => Err(SafeFsError::NotRegular {
                path: path.to_path_buf(),
                kind,
            }),
        },
        Err(_) => Ok(()),
    }
}

fn regular(path: &Path, file: &File) -> Result<Metadata, SafeFsError> {
    let meta = file
        .metadata()
        .map_err(|e| SafeFsError::io(path, "examined", e))?;
    match FileKind::of(meta.file_type()) {
        FileKind::Regular => Ok(meta),
        kind => Err(SafeFsError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// A failed open, explained by what is at the path when that is the reason
/// (`ELOOP` for a symlink under `O_NOFOLLOW`, `ENXIO` for a FIFO without a
/// reader, `EISDIR`).
fn open_error(path: &Path, e: std::io::Error) -> SafeFsError {
    if e.kind() == std::io::ErrorKind::NotFound {
        return SafeFsError::NotFound {
            path: path.to_path_buf(),
        };
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let kind = FileKind::of(meta.file_type());
        if kind != FileKind::Regular {
            return SafeFsError::NotRegular {
                path: path.to_path_buf(),
                kind,
            };
        }
    }
    SafeFsError::io(path, "opened", e)
}

#[cfg(test)]
mod tests;
