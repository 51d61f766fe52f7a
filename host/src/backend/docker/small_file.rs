//! Reading the engine's configuration files (config.json, a context's
//! meta.json, TLS material): small regular files, through
//! [`crate::safe_fs`]. A FIFO or device put where a file is expected fails
//! at once, never blocking the connect, and a huge file is not read whole.
//! Symlinks are followed: certificate directories are often links.

use std::path::Path;

use crate::safe_fs::{self, SafeFsError};

/// Larger than any real config.json, meta.json or PEM file.
pub const CAP: u64 = 1 << 20;

/// The whole of `path`, refused unless it is a regular file of at most
/// [`CAP`].
pub fn read(path: &Path) -> Result<Vec<u8>, SafeFsError> {
    safe_fs::read_user_file(path, CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused() {
        let dir = std::env::temp_dir().join(format!("runner-small-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, b"abc").unwrap();
        assert_eq!(read(&ok).unwrap(), b"abc");
        assert!(read(&dir.join("nope")).unwrap_err().is_not_found());
        assert!(matches!(read(&dir), Err(SafeFsError::NotRegular { .. })));
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read(&fifo), Err(SafeFsError::NotRegular { .. })));
        let huge = dir.join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(CAP + 1)
            .unwrap();
        assert!(matches!(read(&huge), Err(SafeFsError::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
