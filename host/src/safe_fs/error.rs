//! What a refused host file is, and why it was refused.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What is at a path, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl FileKind {
    pub fn of(t: std::fs::FileType) -> Self {
        if t.is_file() {
            FileKind::Regular
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Unknown
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Unknown => "a file of unknown type",
        })
    }
}

/// Why a host file was refused. Every message is `<path> <problem>`, so a
/// caller can prefix what the file is for: "plugin file /x.wasm is a FIFO,
/// not a regular file".
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("{} is {kind}, not a directory", path.display())]
    NotDirectory { path: PathBuf, kind: FileKind },
    #[error("{} is {size} bytes, larger than the {} limit", path.display(), human_size(*cap))]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("{} could not be read within {} ms (a stalled file system?)", path.display(), deadline.as_millis())]
    Timeout { path: PathBuf, deadline: Duration },
    #[error("{} belongs to uid {owner}, not to this user (uid {user})", path.display())]
    NotOwned {
        path: PathBuf,
        owner: u32,
        user: u32,
    },
    #[error("{} is open to group or others (mode {mode:03o}); it must be 0600", path.display())]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("{} is {size} bytes, not the {expected} it must be", path.display())]
    WrongSize {
        path: PathBuf,
        size: u64,
        expected: u64,
    },
    #[error("{} could not be {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What failed, as a past participle: "opened", "read", "written".
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl SafeFsError {
    pub fn path(&self) -> &Path {
        match self {
            SafeFsError::NotFound { path }
            | SafeFsError::NotRegular { path, .. }
            | SafeFsError::NotDirectory { path, .. }
            | SafeFsError::TooLarge { path, .. }
            | SafeFsError::Timeout { path, .. }
            | SafeFsError::NotOwned { path, .. }
            | SafeFsError::NotPrivate { path, .. }
            | SafeFsError::WrongSize { path, .. }
            | SafeFsError::Io { path, .. } => path,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeFsError::NotFound { .. })
    }

    /// The message without the leading path: "is a FIFO, not a regular
    /// file".
    pub fn problem(&self) -> String {
        let full = self.to_string();
        let path = self.path().display().to_string();
        full.strip_prefix(&path)
            .map(|rest| rest.trim_start().to_string())
            .unwrap_or(full)
    }

    pub(super) fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
        SafeFsError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

/// `1 MiB`, `256 MiB`, `64 KiB`, `32 bytes`.
pub fn human_size(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{} {name}", n / unit);
        }
    }
    format!("{n} bytes")
}
