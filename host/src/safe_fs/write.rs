//! Writes: no-follow appends and locks, atomic replaces, create-only-once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{FileKind, OPEN_FLAGS, SafeFsError, open_error, refuse_odd, regular};

/// Opens `path` for appending, creating it with `mode` if missing. Refuses
/// anything but a regular file, and never follows a symlink there.
pub fn open_append(path: &Path, mode: u32) -> Result<File, SafeFsError> {
    open_write(path, mode, true)
}

/// Opens (creating with `mode`) a lock file: a regular file of at most
/// `cap` bytes (runner's locks are empty; a big file there is not one).
pub fn open_lock(path: &Path, mode: u32, cap: u64) -> Result<File, SafeFsError> {
    let file = open_write(path, mode, false)?;
    let size = file
        .metadata()
        .map_err(|e| SafeFsError::io(path, "examined", e))?
        .len();
    if size > cap {
        return Err(SafeFsError::TooLarge {
            path: path.to_path_buf(),
            size,
            cap,
        });
    }
    Ok(file)
}

fn open_write(path: &Path, mode: u32, append: bool) -> Result<File, SafeFsError> {
    refuse_odd(path, std::fs::symlink_metadata(path))?;
    let mut options = OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.read(true).write(true);
    }
    let file = options
        .create(true)
        .mode(mode)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    regular(path, &file)?;
    Ok(file)
}

/// Replaces `path` with `bytes` atomically: a temp file in the same
/// directory (`O_CREAT | O_EXCL | O_NOFOLLOW`, `mode`), then `rename`. A
/// symlink at `path` is replaced, not followed; a directory there is refused.
/// No fsync: callers write state that is cheap to lose in a crash.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SafeFsError> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.is_dir()
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(SafeFsError::NotRegular {
            path: path.to_path_buf(),
            kind: FileKind::Directory,
        });
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SafeFsError::io(path, "replaced", e)
    })
}

/// Creates `path` holding `bytes` only if nothing is there, and only ever
/// whole: readers see no file or the complete one. `Ok(false)`: something
/// already was (another process may have won the race).
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, SafeFsError> {
    let tmp = write_temp(path, bytes, mode)?;
    let published = publish_no_replace(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match published {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(SafeFsError::io(path, "created", e)),
    }
}

/// `rename(tmp, path)` that never replaces: `renameat2(RENAME_NOREPLACE)`,
/// else (a file system without it) a hard link, which fails on an existing
/// name too. `tmp` may be left for the caller to remove.
fn publish_no_replace(tmp: &Path, path: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            std::fs::hard_link(tmp, path)
        }
        Err(e) => Err(e.into()),
    }
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, SafeFsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(OPEN_FLAGS)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(SafeFsError::io(path, "written", e))
        }
    }
}

/// Makes sure `path` is a directory, creating it (`mode`) and its parents
/// if missing. The parents may be symlinks (the user's layout); `path`
/// itself must be a real directory.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), SafeFsError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| SafeFsError::io(parent, "created", e))?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SafeFsError::io(path, "created", e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| SafeFsError::io(path, "examined", e))?;
    match FileKind::of(meta.file_type()) {
        FileKind::Directory => Ok(()),
        kind => Err(SafeFsError::NotDirectory {
            path: path.to_path_buf(),
            kind,
        }),
    }
}
