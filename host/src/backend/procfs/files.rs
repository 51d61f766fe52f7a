//! File operations inside the sandbox root.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::ProcView;
use super::parse::{ResolvedUser, resolve_user_spec};
use crate::backend::{BackendError, FileContent, FileKind, FileStat, WriteSpec};

/// `openat2` returns EAGAIN when a concurrent rename races a `..` lookup.
const OPENAT2_RETRIES: usize = 8;

impl ProcView {
    /// `lstat` of `path` inside the sandbox root.
    pub(crate) fn stat(&self, path: &str) -> Result<Option<FileStat>, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = match open_in_root(
            &root,
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(file_error("stat", path, e)),
        };
        let st = rfs::fstat(&fd).map_err(|e| file_error("stat", path, e))?;
        Ok(Some(self.file_stat(&st)))
    }

    fn file_stat(&self, st: &rfs::Stat) -> FileStat {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        };
        FileStat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: self.uid_map.to_inside(st.st_uid),
            gid: self.gid_map.to_inside(st.st_gid),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
        }
    }

    /// Reads at most `max` bytes of a regular file.
    pub(crate) fn read_file(&self, path: &str, max: usize) -> Result<FileContent, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = open_in_root(
            &root,
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            Errno::LOOP => {
                BackendError::Denied(format!("{path} is a symlink; refusing to follow it"))
            }
            e => file_error("read", path, e),
        })?;
        let st = rfs::fstat(&fd).map_err(|e| file_error("read", path, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {}
            FileType::Directory => {
                return Err(BackendError::Failed(format!("{path} is a directory")));
            }
            _ => {
                return Err(BackendError::Denied(format!(
                    "{path} is not a regular file; refusing to read it"
                )));
            }
        }
        let (data, truncated) = read_fd_capped(fd, max)
            .map_err(|e| BackendError::Failed(format!("read {path}: {e}")))?;
        Ok(FileContent { data, truncated })
    }

    /// Atomic replace of a regular file; any symlink on the path is denied.
    pub(crate) fn write_file(&self, spec: &WriteSpec) -> Result<(), BackendError> {
        let path = spec.path.as_str();
        let (parent, name) = split_parent(path)?;
        let uid = self.uid_map.to_outside(spec.uid).ok_or_else(|| {
            BackendError::Denied(format!("uid {} is not mapped in the sandbox", spec.uid))
        })?;
        let gid = self.gid_map.to_outside(spec.gid).ok_or_else(|| {
            BackendError::Denied(format!("gid {} is not mapped in the sandbox", spec.gid))
        })?;
        let root = self.root()?;
        let dir = open_parent(&root, parent, path)?;
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => {
                    return Err(BackendError::Denied(format!(
                        "{path} is a symlink; refusing to write through it"
                    )));
                }
                FileType::Directory => {
                    return Err(BackendError::Failed(format!("{path} is a directory")));
                }
                _ => {
                    return Err(BackendError::Denied(format!(
                        "{path} is not a regular file; refusing to replace it"
                    )));
                }
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(file_error("write", path, e)),
        }

        let temp = TempFile::create(&dir, name).map_err(|e| file_error("write", path, e))?;
        let written = (|| -> Result<(), (&'static str, Errno)> {
            let mut file = File::from(temp.fd.try_clone().map_err(|e| ("dup", io_errno(&e)))?);
            file.write_all(&spec.data)
                .map_err(|e| ("write", io_errno(&e)))?;
            // chown before chmod: the kernel clears set-id bits on chown.
            rfs::fchown(
                &temp.fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| ("chown", e))?;
            rfs::fchmod(&temp.fd, Mode::from_raw_mode(spec.mode & 0o7777))
                .map_err(|e| ("chmod", e))?;
            rfs::fsync(&temp.fd).map_err(|e| ("fsync", e))?;
            rfs::renameat(&dir, temp.name.as_str(), &dir, name).map_err(|e| ("rename", e))?;
            Ok(())
        })();
        match written {
            Ok(()) => temp.disarm(),
            Err((step, e)) => {
                drop(temp);
                return Err(file_error(step, path, e));
            }
        }
        rfs::fsync(&dir).map_err(|e| {
            BackendError::Failed(format!(
                "{path} was replaced but syncing its directory failed: {e}"
            ))
        })
    }

    /// Removes `path` if it is a regular file whose content (when given)
    /// equals `if_content`. `Ok(false)` = absent or different.
    pub(crate) fn remove_file_if(
        &self,
        path: &str,
        if_content: Option<&[u8]>,
    ) -> Result<bool, BackendError> {
        let (parent, name) = split_parent(path)?;
        let root = self.root()?;
        let dir = match open_in_root(
            &root,
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(false),
            Err(Errno::LOOP) => {
                return Err(BackendError::Denied(format!(
                    "a symlink is on the path of {path}; refusing to remove through it"
                )));
            }
            Err(e) => return Err(file_error("remove", path, e)),
        };
        let st = match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(file_error("remove", path, e)),
        };
        refuse_non_regular(path, &st)?;
        if let Some(expected) = if_content {
            let fd = match rfs::openat(
                &dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(false),
                Err(Errno::LOOP) => {
                    return Err(BackendError::Denied(format!(
                        "{path} became a symlink; refusing to remove it"
                    )));
                }
                Err(e) => return Err(file_error("remove", path, e)),
            };
            let opened = rfs::fstat(&fd).map_err(|e| file_error("remove", path, e))?;
            refuse_non_regular(path, &opened)?;
            let (data, truncated) = read_fd_capped(fd, expected.len())
                .map_err(|e| BackendError::Failed(format!("read {path}: {e}")))?;
            if truncated || data != expected {
                return Ok(false);
            }
            // The name must still point at the inode whose content we compared;
            // a new owner renaming its own lock into place wins.
            match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if now.st_dev == opened.st_dev && now.st_ino == opened.st_ino => {}
                Ok(_) | Err(Errno::NOENT) => return Ok(false),
                Err(e) => return Err(file_error("remove", path, e)),
            }
        }
        match rfs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(file_error("remove", path, e)),
        }
    }

    /// Up to `max` names in a directory, sorted; `None` when it is absent.
    pub(crate) fn list_dir(
        &self,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError> {
        check_absolute(path)?;
        let root = self.root()?;
        let fd = match open_in_root(
            &root,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::NOTDIR) => {
                return Err(BackendError::Failed(format!("{path} is not a directory")));
            }
            Err(e) => return Err(file_error("list", path, e)),
        };
        let mut dir = rfs::Dir::new(fd).map_err(|e| file_error("list", path, e))?;
        let mut names = Vec::new();
        while names.len() < max {
            match dir.read() {
                None => break,
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_string_lossy();
                    if name != "." && name != ".." {
                        names.push(name.into_owned());
                    }
                }
                Some(Err(e)) => return Err(file_error("list", path, e)),
            }
        }
        names.sort();
        Ok(Some(names))
    }

    /// Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`) with the
    /// sandbox's own `/etc/passwd` and `/etc/group`.
    pub(crate) fn resolve_user(&self, user: &str) -> Result<ResolvedUser, BackendError> {
        let read = |path: &str| -> String {
            self.read_file(path, 4 * 1024 * 1024)
                .map(|c| String::from_utf8_lossy(&c.data).into_owned())
                .unwrap_or_default()
        };
        resolve_user_spec(user, &read("/etc/passwd"), &read("/etc/group"))
    }
}

/// A temp file next to its target that is unlinked on drop unless disarmed.
struct TempFile<'a> {
    dir: &'a OwnedFd,
    name: String,
    fd: OwnedFd,
    armed: bool,
}

impl<'a> TempFile<'a> {
    fn create(dir: &'a OwnedFd, target: &str) -> Result<Self, Errno> {
        let mut last = Errno::EXIST;
        for _ in 0..8 {
            let mut rand = [0u8; 8];
            rustix::rand::getrandom(&mut rand, rustix::rand::GetRandomFlags::empty())?;
            let suffix: String = rand.iter().map(|b| format!("{b:02x}")).collect();
            // Keep the name within NAME_MAX whatever the target's length.
            let stem: String = target.chars().take(200).collect();
            let name = format!(".{stem}.runner-{suffix}.tmp");
            match rfs::openat(
                dir,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    return Ok(Self {
                        dir,
                        name,
                        fd,
                        armed: true,
                    });
                }
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = rfs::unlinkat(self.dir, self.name.as_str(), AtFlags::empty())
        {
            tracing::warn!(temp = %self.name, error = %e, "could not remove temp file");
        }
    }
}

fn open_in_root(
    root: &OwnedFd,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut last = Errno::AGAIN;
    for _ in 0..OPENAT2_RETRIES {
        match rfs::openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) => last = Errno::AGAIN,
            other => return other,
        }
    }
    Err(last)
}

fn open_parent(root: &OwnedFd, parent: &str, path: &str) -> Result<OwnedFd, BackendError> {
    open_in_root(
        root,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::LOOP => BackendError::Denied(format!(
            "a symlink is on the path of {path}; refusing to write through it"
        )),
        Errno::NOENT => BackendError::Failed(format!("directory {parent} does not exist")),
        Errno::NOTDIR => BackendError::Failed(format!("{parent} is not a directory")),
        e => file_error("open", parent, e),
    })
}

fn refuse_non_regular(path: &str, st: &rfs::Stat) -> Result<(), BackendError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(()),
        FileType::Symlink => Err(BackendError::Denied(format!(
            "{path} is a symlink; only regular files are removed"
        ))),
        FileType::Directory => Err(BackendError::Denied(format!(
            "{path} is a directory; only regular files are removed"
        ))),
        _ => Err(BackendError::Denied(format!(
            "{path} is not a regular file; only regular files are removed"
        ))),
    }
}

fn check_absolute(path: &str) -> Result<(), BackendError> {
    if !path.starts_with('/') {
        return Err(BackendError::Denied(format!(
            "path '{path}' is not absolute; sandbox paths must start with /"
        )));
    }
    if path.contains('\0') {
        return Err(BackendError::Denied("path contains a NUL byte".into()));
    }
    Ok(())
}

/// `/a/b/c` → (`/a/b`, `c`); the last component must be a plain name.
pub(crate) fn split_parent(path: &str) -> Result<(&str, &str), BackendError> {
    check_absolute(path)?;
    let (parent, name) = path.rsplit_once('/').unwrap_or(("/", path));
    if name.is_empty() || name == "." || name == ".." {
        return Err(BackendError::Denied(format!(
            "'{path}' does not name a file (it ends in '/', '.' or '..')"
        )));
    }
    Ok((if parent.is_empty() { "/" } else { parent }, name))
}

fn file_error(op: &str, path: &str, e: Errno) -> BackendError {
    match e {
        Errno::ACCESS | Errno::PERM => {
            BackendError::Denied(format!("{op} {path}: permission denied"))
        }
        Errno::LOOP => BackendError::Denied(format!("{op} {path}: a symlink is in the way")),
        Errno::XDEV => BackendError::Denied(format!("{op} {path}: escapes the sandbox root")),
        Errno::NOENT => BackendError::Failed(format!("{op} {path}: no such file or directory")),
        Errno::ROFS => BackendError::Failed(format!("{op} {path}: read-only file system")),
        Errno::NOSPC => BackendError::Failed(format!("{op} {path}: no space left on device")),
        e => BackendError::Failed(format!("{op} {path}: {e}")),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error()
        .map(Errno::from_raw_os_error)
        .unwrap_or(Errno::IO)
}

/// Reads at most `max` bytes; `truncated` when more were there.
fn read_fd_capped(fd: OwnedFd, max: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let file = File::from(fd);
    let mut data = Vec::with_capacity(max.min(64 * 1024) + 1);
    file.take(max as u64 + 1).read_to_end(&mut data)?;
    let truncated = data.len() > max;
    data.truncate(max);
    Ok((data, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parent_paths() {
        assert_eq!(split_parent("/a/b/c").unwrap(), ("/a/b", "c"));
        assert_eq!(split_parent("/c").unwrap(), ("/", "c"));
        assert!(split_parent("/a/").is_err());
        assert!(split_parent("/a/..").is_err());
        assert!(split_parent("rel/x").is_err());
    }
}
