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

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one read of a host file may take before it is given up.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Flags of every open: never follow a final symlink, never block on a
/// FIFO, never leak the descriptor into a child, never adopt a terminal.
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

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

    fn io(path: &Path, op: &'static str, source: std::io::Error) -> Self {
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

/// Runs `f` on a helper thread and waits at most `deadline` for it. A
/// thread stuck in the kernel (a hung NFS mount) is left behind; it holds
/// nothing but its own descriptor.
fn within<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Self {
            let d =
                std::env::temp_dir().join(format!("runner-safefs-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    fn sparse(path: &Path, len: u64) {
        std::fs::File::create(path).unwrap().set_len(len).unwrap();
    }

    /// Every odd thing that can sit at a path runner reads.
    fn odd_things(d: &Dir) -> Vec<(PathBuf, &'static str)> {
        let target = d.join("target");
        std::fs::write(&target, b"secret").unwrap();
        let fifo = d.join("fifo");
        mkfifo(&fifo);
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = d.join("dangling");
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        let dir = d.join("dir");
        std::fs::create_dir(&dir).unwrap();
        let sock = d.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        vec![
            (fifo, "is a FIFO, not a regular file"),
            (link, "is a symbolic link, not a regular file"),
            (dangling, "is a symbolic link, not a regular file"),
            (dir, "is a directory, not a regular file"),
            (sock, "is a socket, not a regular file"),
            (PathBuf::from("/dev/null"), "is a character device"),
        ]
    }

    #[test]
    fn reads_refuse_everything_but_a_regular_file_at_once() {
        let d = Dir::new("odd");
        for (path, problem) in odd_things(&d) {
            let started = Instant::now();
            let err = read_regular(&path, 1024).unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{path:?} took long"
            );
            let text = err.to_string();
            assert!(text.starts_with(&path.display().to_string()), "{text}");
            assert!(text.contains(problem), "{path:?}: {text}");
            assert!(err.problem().starts_with("is a"), "{}", err.problem());
        }
        assert!(
            read_regular(&d.join("missing"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn a_file_the_user_named_may_be_a_link_to_a_regular_file_only() {
        let d = Dir::new("user");
        let things = odd_things(&d);
        let real = d.join("plugin.wasm");
        std::fs::write(&real, b"\0asm").unwrap();
        let link = d.join("current.wasm");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_user_file(&link, 10).unwrap(), b"\0asm");
        assert!(
            read_regular(&link, 10).is_err(),
            "runner's own files: no links"
        );
        let to_fifo = d.join("to-fifo.wasm");
        std::os::unix::fs::symlink(&things[0].0, &to_fifo).unwrap();
        let started = Instant::now();
        let err = read_user_file(&to_fifo, 10).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            err.to_string().contains("is a FIFO, not a regular file"),
            "{err}"
        );
        assert!(
            read_user_file(&d.join("dangling"), 10)
                .unwrap_err()
                .is_not_found()
        );
        for (path, _) in &things[3..] {
            assert!(read_user_file(path, 10).is_err(), "{path:?}");
        }
    }

    #[test]
    fn reads_are_capped_by_the_size_before_any_byte_is_read() {
        let d = Dir::new("cap");
        let small = d.join("small");
        std::fs::write(&small, b"0123456789").unwrap();
        assert_eq!(read_regular(&small, 10).unwrap(), b"0123456789");
        let err = read_regular(&small, 9).unwrap_err();
        assert!(
            matches!(
                err,
                SafeFsError::TooLarge {
                    size: 10,
                    cap: 9,
                    ..
                }
            ),
            "{err:?}"
        );

        let huge = d.join("huge");
        sparse(&huge, 5 << 30);
        let started = Instant::now();
        let err = read_regular(&huge, 256 << 20).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 5368709120 bytes, larger than the 256 MiB limit",
                huge.display()
            )
        );
    }

    #[test]
    fn a_read_that_does_not_finish_is_given_up_at_its_deadline() {
        let d = Dir::new("deadline");
        let started = Instant::now();
        let err = within(&d.join("stalled"), Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        })
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, SafeFsError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains("within 100 ms"), "{err}");
    }

    #[test]
    fn appends_never_follow_a_symlink_nor_open_a_fifo() {
        let d = Dir::new("append");
        for (path, problem) in odd_things(&d) {
            let started = Instant::now();
            let err = open_append(&path, 0o600).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(err.to_string().contains(problem), "{path:?}: {err}");
        }
        assert_eq!(std::fs::read(d.join("target")).unwrap(), b"secret");
        assert!(!d.join("nowhere").exists(), "a dangling link was followed");

        let log = d.join("log");
        open_append(&log, 0o600).unwrap().write_all(b"a\n").unwrap();
        open_append(&log, 0o600).unwrap().write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"a\nb\n");
        let mode = std::fs::metadata(&log).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn lock_files_are_regular_small_and_not_followed() {
        let d = Dir::new("lock");
        for (path, problem) in odd_things(&d) {
            let err = open_lock(&path, 0o600, 4096).unwrap_err();
            assert!(err.to_string().contains(problem), "{path:?}: {err}");
        }
        let big = d.join("big.lock");
        sparse(&big, 1 << 30);
        assert!(matches!(
            open_lock(&big, 0o600, 4096).unwrap_err(),
            SafeFsError::TooLarge { .. }
        ));
        open_lock(&d.join("ok.lock"), 0o600, 4096).unwrap();
    }

    #[test]
    fn atomic_writes_replace_a_symlink_instead_of_writing_through_it() {
        let d = Dir::new("atomic");
        let target = d.join("target");
        std::fs::write(&target, b"keep").unwrap();
        let path = d.join("record");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomic(&path, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(read_regular(&path, 10).unwrap(), b"new");

        let fifo = d.join("fifo");
        mkfifo(&fifo);
        write_atomic(&fifo, b"x", 0o644).unwrap();
        assert_eq!(read_regular(&fifo, 10).unwrap(), b"x");

        let dir = d.join("dir");
        std::fs::create_dir(&dir).unwrap();
        let err = write_atomic(&dir, b"x", 0o644).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        // No temp files are left behind.
        let names: Vec<String> = std::fs::read_dir(&d.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn create_new_publishes_once_and_whole() {
        let d = Dir::new("create");
        let path = d.join("key");
        assert!(create_new(&path, b"first", 0o600).unwrap());
        assert!(!create_new(&path, b"second", 0o600).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let link = d.join("link");
        std::os::unix::fs::symlink(d.join("elsewhere"), &link).unwrap();
        assert!(!create_new(&link, b"x", 0o600).unwrap());
        assert!(!d.join("elsewhere").exists());
        assert_eq!(std::fs::read_dir(&d.0).unwrap().count(), 2);
    }

    #[test]
    fn private_files_must_be_ours_exact_and_0600() {
        let d = Dir::new("private");
        let path = d.join("key");
        std::fs::write(&path, [7u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&path, 32).unwrap(), [7u8; 32]);
        assert!(matches!(
            read_private(&path, 16).unwrap_err(),
            SafeFsError::WrongSize { .. }
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_private(&path, 32).unwrap_err();
        assert!(err.to_string().contains("mode 640"), "{err}");
        let link = d.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            read_private(&link, 32).unwrap_err(),
            SafeFsError::NotRegular {
                kind: FileKind::Symlink,
                ..
            }
        ));
    }

    #[test]
    fn ensure_dir_refuses_a_symlink_or_a_file_where_a_directory_belongs() {
        let d = Dir::new("dirs");
        let fresh = d.join("a/b/locks");
        ensure_dir(&fresh, 0o700).unwrap();
        ensure_dir(&fresh, 0o700).unwrap();
        let link = d.join("linked");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let err = ensure_dir(&link, 0o700).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a symbolic link, not a directory"),
            "{err}"
        );
        let file = d.join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            ensure_dir(&file, 0o700).unwrap_err(),
            SafeFsError::NotDirectory { .. }
        ));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(1 << 20), "1 MiB");
        assert_eq!(human_size(64 << 10), "64 KiB");
        assert_eq!(human_size(32), "32 bytes");
        assert_eq!(human_size(1000), "1000 bytes");
    }
}
